!> ckpt: coordinated checkpoint/restart for MPI simulations, Fortran 2008 module.
!>
!> GENERATED from ckpt_body.f90.in by gen_ckpt_f90.py: edit those two, then run
!> `/usr/bin/python3 libckpt/fortran/gen_ckpt_f90.py`.
!>
!> A thin layer over the C API (ckpt/ckpt.h) with iso_c_binding. Quick start (the lines
!> that make a solver restartable; docs/fortran.md has the rest):
!>
!>   use ckpt
!>   type(ckpt_handle) :: ck
!>   call ckpt_open(ck, MPI_COMM_WORLD, "run", every=100, exit_on_stop=.true.)
!>   call ckpt_protect_distributed(ck, "u", u, [nx, ny], [i0, j0])   ! this rank's block
!>   do while (ckpt_steps(ck, step, nsteps))    ! restores, then checkpoints per policy
!>     call advance(u)
!>   end do
!>
!> Array layout: a Fortran array a(n1, n2, n3) is stored as the C (row-major) array of
!> shape (n3, n2, n1), so the file holds exactly the bytes of the Fortran array and h5py
!> or C see the extents reversed: a_global(i, j, k) is f["a"][k-1, j-1, i-1]. Global
!> extents, offsets and counts are given in Fortran order (fastest dimension first);
!> offsets are 0-based (the number of elements before the block, as in
!> MPI_Type_create_subarray). A complex array gets one more, fastest, dimension of 2
!> (real, imaginary): complex(real64) z(nx, ny) is float64 (ny, nx, 2) in the file. A
!> logical array is stored as a signed integer of the logical's storage size (4 bytes with
!> gfortran), holding the compiler's bit pattern (gfortran: .true. = 1).
!>
!> Names, keys, values and the directory lose their trailing blanks (trim).
!>
!> Errors: every procedure takes an optional `integer, intent(out) :: status` (pass it by
!> keyword, status=st), set to CKPT_OK or the C API's code; ckpt_last_error() gives the
!> message. Without `status` a failure ends the program: after a collective call every
!> rank closes the handle, rank 0 prints the message and all finalize MPI and exit 1;
!> after a local call (protect_*, metadata) the rank prints it and calls MPI_Abort.
!>
!> Protected arrays: ckpt keeps the address of each protected array and reads and writes
!> it at every checkpoint and restore. Give the actual argument the TARGET attribute (or
!> make it an allocatable with TARGET), keep it allocated and do not move it
!> (no reallocation, no move_alloc) until ckpt_close. The array must be contiguous (a
!> whole array, not a section): pass the whole allocation with ghost cells and describe
!> the owned block with count= and memory_offset=.
module ckpt
  use, intrinsic :: iso_c_binding, only: c_ptr, c_null_ptr, c_loc, c_int, c_int64_t, &
                                         c_double, c_char, c_null_char, c_size_t, &
                                         c_associated, c_f_pointer, c_sizeof
  use, intrinsic :: iso_fortran_env, only: int32, int64, real32, real64, error_unit, &
                                           output_unit
  use mpi_f08, only: MPI_Comm, MPI_Finalize, MPI_Abort, MPI_COMM_WORLD
  implicit none
  private

  public :: ckpt_handle
  public :: ckpt_open, ckpt_protect_distributed, ckpt_protect_replicated, &
            ckpt_protect_per_rank, ckpt_metadata, ckpt_restore, ckpt_step, ckpt_steps, &
            ckpt_save, ckpt_request_stop, ckpt_exit_code, ckpt_close, ckpt_last_error, &
            ckpt_status_name, ckpt_version

  !> Status codes: the values of ckpt_status in ckpt/ckpt.h (and ckpt::Errc).
  integer, parameter, public :: CKPT_OK = 0, CKPT_INVALID_ARGUMENT = 1, CKPT_IO = 2, &
    CKPT_NO_SPACE = 3, CKPT_HDF5 = 4, CKPT_MPI = 5, CKPT_CORRUPT = 6, &
    CKPT_UNSUPPORTED_VERSION = 7, CKPT_MISMATCH = 8, CKPT_RANK_COUNT = 9, &
    CKPT_MISSING_FIELD = 10, CKPT_NO_VALID_CHECKPOINT = 11, CKPT_LOCKED = 12, &
    CKPT_REMOTE = 13, CKPT_INTERNAL = 14, CKPT_RESTART_LIMIT = 15
  !> Exit status of a program that stopped after a durable checkpoint with work left
  !> (EX_TEMPFAIL); slurm/ckpt-run requeues the job on it.
  integer, parameter, public :: CKPT_EXIT_MORE_WORK = 75

  ! ckpt_dtype values (ckpt/ckpt.h)
  integer(c_int), parameter :: CKPT_I8 = 1, CKPT_I16 = 3, CKPT_I32 = 5, CKPT_I64 = 7, &
                               CKPT_F32 = 8, CKPT_F64 = 9
  integer(c_int), parameter :: CKPT_MODE_SYNC = 0, CKPT_MODE_ASYNC = 1
  integer, parameter :: CKPT_MAX_SIGNALS = 8

  !> A checkpointer (ckpt_handle * of the C API). Default-initialised: not open.
  type :: ckpt_handle
    private
    type(c_ptr) :: h = c_null_ptr
    integer :: rank = -1
    logical :: stopped = .false.       ! a stop was reported: exit code 75
    logical :: exit_on_stop = .false.
    logical :: restored = .false.      ! ckpt_restore was called
  end type ckpt_handle

  ! ckpt_options of ckpt/ckpt.h, field for field (the size is checked in ckpt_open).
  type, bind(C) :: c_options
    type(c_ptr) :: dir = c_null_ptr
    integer(c_int64_t) :: every = 0
    integer(c_int) :: every_auto = 0
    real(c_double) :: seconds = 0
    integer(c_int) :: keep = 0
    integer(c_int) :: quiet = 0
    integer(c_int) :: mode = CKPT_MODE_SYNC
    integer(c_int) :: nsignals = 0
    integer(c_int) :: signals(CKPT_MAX_SIGNALS) = 0
    real(c_double) :: margin_seconds = 0
    integer(c_int) :: max_restarts = 0
    real(c_double) :: mtbf_seconds = 0
    type(c_ptr) :: local_dir = c_null_ptr
    integer(c_int) :: flush_every = 0
  end type c_options

  interface
    function c_fortran_open(comm, dir, opts, out, rank) bind(C, name="ckpt_fortran_open")
      import :: c_int, c_ptr, c_options
      integer(c_int), value :: comm
      type(c_ptr), value :: dir
      type(c_options), intent(in) :: opts
      type(c_ptr), intent(out) :: out
      integer(c_int), intent(out) :: rank
      integer(c_int) :: c_fortran_open
    end function
    function c_fortran_options_size() bind(C, name="ckpt_fortran_options_size")
      import :: c_size_t
      integer(c_size_t) :: c_fortran_options_size
    end function
    subroutine c_fortran_exit(code) bind(C, name="ckpt_fortran_exit")
      import :: c_int
      integer(c_int), value :: code
    end subroutine
    function c_protect_distributed(h, name, dtype, data, ndims, global, offset, count) &
        bind(C, name="ckpt_protect_distributed")
      import :: c_ptr, c_char, c_int, c_int64_t
      type(c_ptr), value :: h, data
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: dtype, ndims
      integer(c_int64_t), intent(in) :: global(*), offset(*), count(*)
      integer(c_int) :: c_protect_distributed
    end function
    function c_protect_distributed_ghost(h, name, dtype, data, ndims, global, offset, &
        count, memory, memory_offset) bind(C, name="ckpt_protect_distributed_ghost")
      import :: c_ptr, c_char, c_int, c_int64_t
      type(c_ptr), value :: h, data
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: dtype, ndims
      integer(c_int64_t), intent(in) :: global(*), offset(*), count(*), memory(*), &
                                        memory_offset(*)
      integer(c_int) :: c_protect_distributed_ghost
    end function
    function c_protect_replicated(h, name, dtype, data, ndims, shape) &
        bind(C, name="ckpt_protect_replicated")
      import :: c_ptr, c_char, c_int, c_int64_t
      type(c_ptr), value :: h, data
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: dtype, ndims
      integer(c_int64_t), intent(in) :: shape(*)
      integer(c_int) :: c_protect_replicated
    end function
    function c_protect_per_rank(h, name, dtype, data, ndims, shape) &
        bind(C, name="ckpt_protect_per_rank")
      import :: c_ptr, c_char, c_int, c_int64_t
      type(c_ptr), value :: h, data
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: dtype, ndims
      integer(c_int64_t), intent(in) :: shape(*)
      integer(c_int) :: c_protect_per_rank
    end function
    function c_metadata(h, key, value) bind(C, name="ckpt_metadata")
      import :: c_ptr, c_char, c_int
      type(c_ptr), value :: h
      character(kind=c_char), intent(in) :: key(*), value(*)
      integer(c_int) :: c_metadata
    end function
    function c_restore(h, restored, step) bind(C, name="ckpt_restore")
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: h
      integer(c_int), intent(out) :: restored
      integer(c_int64_t), intent(out) :: step
      integer(c_int) :: c_restore
    end function
    function c_step(h, step, time, stop) bind(C, name="ckpt_step")
      import :: c_ptr, c_int, c_int64_t, c_double
      type(c_ptr), value :: h
      integer(c_int64_t), value :: step
      real(c_double), value :: time
      integer(c_int), intent(out) :: stop
      integer(c_int) :: c_step
    end function
    function c_save(h, step, time) bind(C, name="ckpt_save")
      import :: c_ptr, c_int, c_int64_t, c_double
      type(c_ptr), value :: h
      integer(c_int64_t), value :: step
      real(c_double), value :: time
      integer(c_int) :: c_save
    end function
    function c_request_stop(h) bind(C, name="ckpt_request_stop")
      import :: c_ptr, c_int
      type(c_ptr), value :: h
      integer(c_int) :: c_request_stop
    end function
    function c_close(h) bind(C, name="ckpt_close")
      import :: c_ptr, c_int
      type(c_ptr), intent(inout) :: h
      integer(c_int) :: c_close
    end function
    function c_last_error() bind(C, name="ckpt_last_error")
      import :: c_ptr
      type(c_ptr) :: c_last_error
    end function
    function c_status_name(s) bind(C, name="ckpt_status_name")
      import :: c_ptr, c_int
      integer(c_int), value :: s
      type(c_ptr) :: c_status_name
    end function
    function c_version() bind(C, name="ckpt_version")
      import :: c_ptr
      type(c_ptr) :: c_version
    end function
    function c_strlen(s) bind(C, name="strlen")
      import :: c_ptr, c_size_t
      type(c_ptr), value :: s
      integer(c_size_t) :: c_strlen
    end function
  end interface

  !> Opens a checkpointer on `comm`: type(MPI_Comm) (use mpi_f08) or an integer handle
  !> (use mpi). See ckpt_open_f08 for the arguments. Collective over comm.
  interface ckpt_open
    module procedure ckpt_open_f08, ckpt_open_int
  end interface ckpt_open

  !> Loads the newest valid checkpoint; step is integer(int32) or integer(int64).
  interface ckpt_restore
    module procedure restore_i32, restore_i64
  end interface ckpt_restore

  !> The per-step call (ckpt_step of the C API).
  interface ckpt_step
    module procedure step_i32, step_i64
  end interface ckpt_step

  !> The loop helper: do while (ckpt_steps(ck, step, nsteps)).
  interface ckpt_steps
    module procedure steps_i32, steps_i64
  end interface ckpt_steps

  !> Writes a checkpoint now.
  interface ckpt_save
    module procedure save_i32, save_i64
  end interface ckpt_save

  !> Protects this rank's block of a distributed array (rank 1-3), a value that is the
  !> same on every rank, or a value that differs per rank (scalar or rank 1-3). Types:
  !> real(real32), real(real64), integer(int32), integer(int64), logical, complex(real32),
  !> complex(real64). Local.
  interface ckpt_protect_distributed
    module procedure pd_r32_1, pd_r32_2, pd_r32_3, pd_r64_1
    module procedure pd_r64_2, pd_r64_3, pd_i32_1, pd_i32_2
    module procedure pd_i32_3, pd_i64_1, pd_i64_2, pd_i64_3
    module procedure pd_l_1, pd_l_2, pd_l_3, pd_c32_1
    module procedure pd_c32_2, pd_c32_3, pd_c64_1, pd_c64_2
    module procedure pd_c64_3
  end interface ckpt_protect_distributed
  interface ckpt_protect_replicated
    module procedure rep_r32_0, rep_r32_1, rep_r32_2, rep_r32_3
    module procedure rep_r64_0, rep_r64_1, rep_r64_2, rep_r64_3
    module procedure rep_i32_0, rep_i32_1, rep_i32_2, rep_i32_3
    module procedure rep_i64_0, rep_i64_1, rep_i64_2, rep_i64_3
    module procedure rep_l_0, rep_l_1, rep_l_2, rep_l_3
    module procedure rep_c32_0, rep_c32_1, rep_c32_2, rep_c32_3
    module procedure rep_c64_0, rep_c64_1, rep_c64_2, rep_c64_3
  end interface ckpt_protect_replicated
  interface ckpt_protect_per_rank
    module procedure pr_r32_0, pr_r32_1, pr_r32_2, pr_r32_3
    module procedure pr_r64_0, pr_r64_1, pr_r64_2, pr_r64_3
    module procedure pr_i32_0, pr_i32_1, pr_i32_2, pr_i32_3
    module procedure pr_i64_0, pr_i64_1, pr_i64_2, pr_i64_3
    module procedure pr_l_0, pr_l_1, pr_l_2, pr_l_3
    module procedure pr_c32_0, pr_c32_1, pr_c32_2, pr_c32_3
    module procedure pr_c64_0, pr_c64_1, pr_c64_2, pr_c64_3
  end interface ckpt_protect_per_rank

  ! A failure found in this module (before the C API is called) and whether it is newer
  ! than the C API's last one. One thread at a time, like a handle.
  character(:), allocatable :: local_error
  logical :: local_is_last = .false.

contains

  ! ---- helpers -------------------------------------------------------------------------

  function cstr(s) result(c)
    character(*), intent(in) :: s
    character(kind=c_char, len=:), allocatable :: c
    c = trim(s)//c_null_char
  end function cstr

  function fstr(p) result(s)
    type(c_ptr), intent(in) :: p
    character(:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    if (.not. c_associated(p)) then
      s = ""
      return
    end if
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate (character(n) :: s)
    do i = 1, n
      s(i:i) = chars(i)
    end do
  end function fstr

  function itoa(i) result(s)
    integer(int64), intent(in) :: i
    character(:), allocatable :: s
    character(24) :: buf
    write (buf, '(i0)') i
    s = trim(buf)
  end function itoa

  function list(v) result(s)
    integer(int64), intent(in) :: v(:)
    character(:), allocatable :: s
    integer :: i
    s = "["
    do i = 1, size(v)
      s = s//itoa(v(i))
      if (i < size(v)) s = s//", "
    end do
    s = s//"]"
  end function list

  function logical_dtype(bits) result(t)
    integer, intent(in) :: bits
    integer(c_int) :: t
    select case (bits)
    case (8)
      t = CKPT_I8
    case (16)
      t = CKPT_I16
    case (64)
      t = CKPT_I64
    case default
      t = CKPT_I32
    end select
  end function logical_dtype

  ! Records a failure found here; returns CKPT_INVALID_ARGUMENT.
  function local_fail(ck, op, what) result(s)
    type(ckpt_handle), intent(in) :: ck
    character(*), intent(in) :: op, what
    integer :: s
    if (ck%rank >= 0) then
      local_error = "ckpt[rank "//itoa(int(ck%rank, int64))//"] "//op//": "//what
    else
      local_error = "ckpt: "//op//": "//what
    end if
    local_is_last = .true.
    s = CKPT_INVALID_ARGUMENT
  end function local_fail

  ! The result of a call: into `status` when given, else a failure ends the program
  ! (see the module comment).
  subroutine finish(ck, s, status, collective)
    type(ckpt_handle), intent(inout) :: ck
    integer, intent(in) :: s
    integer, intent(out), optional :: status
    logical, intent(in) :: collective
    integer(c_int) :: ignored
    character(:), allocatable :: msg
    if (present(status)) then
      status = s
      return
    end if
    if (s == CKPT_OK) return
    msg = ckpt_last_error()
    if (collective) then
      ! every rank has the same status: leave together
      if (ck%rank <= 0) write (error_unit, '(a)') msg
      if (c_associated(ck%h)) ignored = c_close(ck%h)
      flush (output_unit)
      flush (error_unit)
      call MPI_Finalize()
      call c_fortran_exit(1_c_int)
    else
      write (error_unit, '(a)') msg
      flush (error_unit)
      call MPI_Abort(MPI_COMM_WORLD, 1)
    end if
  end subroutine finish

  ! Status of a C call; a failure makes the C message the last one.
  function from_c(s) result(r)
    integer(c_int), intent(in) :: s
    integer :: r
    r = int(s)
    if (r /= CKPT_OK) local_is_last = .false.
  end function from_c

  ! A stop was reported: with exit_on_stop the program ends here with status 75, after
  ! the checkpoint (already durable) and a clean close on every rank.
  subroutine stopped(ck)
    type(ckpt_handle), intent(inout) :: ck
    integer(c_int) :: s
    ck%stopped = .true.
    if (.not. ck%exit_on_stop) return
    s = c_close(ck%h)
    if (s /= 0 .and. ck%rank <= 0) write (error_unit, '(a)') ckpt_last_error()
    flush (output_unit)
    flush (error_unit)
    call MPI_Finalize()
    call c_fortran_exit(int(CKPT_EXIT_MORE_WORK, c_int))
  end subroutine stopped

  ! ---- open ----------------------------------------------------------------------------

  !> Opens a checkpointer on `comm` (duplicated, never freed), creates the directory and
  !> installs the stop-signal handlers. `dir` (default "checkpoints"); options as in
  !> ckpt_options of the C API: every (steps), seconds, keep (-1 keeps all), quiet, async
  !> (write in the background), signals (that request "checkpoint and stop"; [integer ::]
  !> for none), margin_seconds, max_restarts, every_auto, mtbf_seconds, local_dir
  !> (node-local storage, with partner copies) and flush_every. CKPT_*
  !> environment variables win over them. exit_on_stop: the ckpt_step or ckpt_steps call
  !> that reports a stop closes the handle, finalizes MPI and exits with status 75.
  !> Collective over comm.
  subroutine ckpt_open_f08(ck, comm, dir, status, every, seconds, keep, quiet, async, &
                           signals, margin_seconds, max_restarts, every_auto, mtbf_seconds, &
                           exit_on_stop, local_dir, flush_every)
    type(ckpt_handle), intent(inout) :: ck
    type(MPI_Comm), intent(in) :: comm
    character(*), intent(in), optional :: dir
    integer, intent(out), optional :: status
    integer, intent(in), optional :: every, keep, max_restarts, flush_every
    character(*), intent(in), optional :: local_dir
    real(real64), intent(in), optional :: seconds, margin_seconds, mtbf_seconds
    logical, intent(in), optional :: quiet, async, every_auto, exit_on_stop
    integer, intent(in), optional :: signals(:)
    call ckpt_open_int(ck, comm%MPI_VAL, dir, status, every, seconds, keep, quiet, async, &
                       signals, margin_seconds, max_restarts, every_auto, mtbf_seconds, &
                       exit_on_stop, local_dir, flush_every)
  end subroutine ckpt_open_f08

  !> ckpt_open with an integer communicator handle (use mpi / mpif.h). Collective.
  subroutine ckpt_open_int(ck, comm, dir, status, every, seconds, keep, quiet, async, &
                           signals, margin_seconds, max_restarts, every_auto, mtbf_seconds, &
                           exit_on_stop, local_dir, flush_every)
    type(ckpt_handle), intent(inout) :: ck
    integer, intent(in) :: comm
    character(*), intent(in), optional :: dir
    integer, intent(out), optional :: status
    integer, intent(in), optional :: every, keep, max_restarts, flush_every
    character(*), intent(in), optional :: local_dir
    real(real64), intent(in), optional :: seconds, margin_seconds, mtbf_seconds
    logical, intent(in), optional :: quiet, async, every_auto, exit_on_stop
    integer, intent(in), optional :: signals(:)
    type(c_options), target :: o
    character(kind=c_char, len=:), allocatable, target :: cdir, clocal
    type(c_ptr) :: pdir
    integer(c_int) :: rank
    integer :: s
    if (c_associated(ck%h)) then
      s = local_fail(ck, "open", "the handle is already open (ckpt_close it first)")
      call finish(ck, s, status, .false.)
      return
    end if
    ck = ckpt_handle()
    if (c_sizeof(o) /= c_fortran_options_size()) then
      s = local_fail(ck, "open", "ckpt_options of ckpt.h and of the Fortran module differ "// &
                     "(rebuild the module with the installed ckpt)")
      call finish(ck, s, status, .false.)
      return
    end if
    if (present(every)) o%every = every
    if (present(seconds)) o%seconds = seconds
    if (present(keep)) o%keep = keep
    if (present(quiet)) o%quiet = merge(1, 0, quiet)
    if (present(async)) o%mode = merge(CKPT_MODE_ASYNC, CKPT_MODE_SYNC, async)
    if (present(signals)) then
      if (size(signals) > CKPT_MAX_SIGNALS) then
        s = local_fail(ck, "open", "more than 8 signals")
        call finish(ck, s, status, .false.)
        return
      end if
      o%nsignals = size(signals)
      if (size(signals) == 0) o%nsignals = -1
      o%signals(1:size(signals)) = signals
    end if
    if (present(margin_seconds)) o%margin_seconds = margin_seconds
    if (present(max_restarts)) o%max_restarts = max_restarts
    if (present(every_auto)) o%every_auto = merge(1, 0, every_auto)
    if (present(mtbf_seconds)) o%mtbf_seconds = mtbf_seconds
    if (present(exit_on_stop)) ck%exit_on_stop = exit_on_stop
    if (present(flush_every)) o%flush_every = flush_every
    if (present(local_dir)) then
      clocal = cstr(local_dir)
      o%local_dir = c_loc(clocal)
    end if
    pdir = c_null_ptr
    if (present(dir)) then
      cdir = cstr(dir)
      pdir = c_loc(cdir)
    end if
    rank = -1
    s = c_fortran_open(int(comm, c_int), pdir, o, ck%h, rank)
    ck%rank = int(rank)
    if (s == -1) then
      s = local_fail(ck, "open", "the communicator is MPI_COMM_NULL")
    else
      s = from_c(int(s, c_int))
    end if
    call finish(ck, s, status, .true.)
  end subroutine ckpt_open_int

  ! ---- protect -------------------------------------------------------------------------

  ! Checks the Fortran view of a block and hands it to the C API in C order (reversed;
  ! complex data gets a fastest dimension of 2).
  subroutine protect_block(ck, name, p, dtype, cplx, fshape, contig, global, offset, &
                           count, memory_offset, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    type(c_ptr), intent(in) :: p
    integer(c_int), intent(in) :: dtype
    logical, intent(in) :: cplx, contig
    integer(int64), intent(in) :: fshape(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(in), optional :: count(:), memory_offset(:)
    integer, intent(out), optional :: status
    integer(int64) :: g(size(fshape) + 1), o(size(fshape) + 1), c(size(fshape) + 1), &
                      m(size(fshape) + 1), mo(size(fshape) + 1)
    integer(int64) :: cnt(size(fshape)), moff(size(fshape))
    integer :: n, nd, s
    character(:), allocatable :: op, field
    op = "protect_distributed"
    field = "field '"//trim(name)//"': "
    n = size(fshape)
    s = CKPT_OK
    if (.not. c_associated(ck%h)) then
      s = local_fail(ck, op, "the handle is not open (call ckpt_open first)")
    else if (.not. contig) then
      s = local_fail(ck, op, field//"the array is not contiguous (pass the whole "// &
                     "array and describe the block with count= and memory_offset=)")
    else if (size(global) /= n .or. size(offset) /= n) then
      s = local_fail(ck, op, field//"global and offset need "//itoa(int(n, int64))// &
                     " extents, one per dimension of the array")
    end if
    cnt = fshape
    moff = 0
    if (s == CKPT_OK .and. present(count)) then
      if (size(count) /= n) then
        s = local_fail(ck, op, field//"count needs "//itoa(int(n, int64))//" extents")
      else
        cnt = count
      end if
    end if
    if (s == CKPT_OK .and. present(memory_offset)) then
      if (size(memory_offset) /= n) then
        s = local_fail(ck, op, field//"memory_offset needs "//itoa(int(n, int64))// &
                       " extents")
      else
        moff = memory_offset
      end if
    end if
    if (s == CKPT_OK .and. (any(cnt < 0) .or. any(moff < 0) .or. any(moff + cnt > fshape))) &
      s = local_fail(ck, op, field//"the block (count "//list(cnt)//", memory_offset "// &
                     list(moff)//") does not fit in the array of shape "//list(fshape))
    if (s == CKPT_OK .and. (any(global < 0) .or. any(offset < 0))) &
      s = local_fail(ck, op, field//"negative extent or offset in global "// &
                     list(int(global, int64))//" or offset "//list(int(offset, int64)))
    if (s /= CKPT_OK) then
      call finish(ck, s, status, .false.)
      return
    end if
    ! Fortran order (fastest first) -> C order (slowest first)
    g(1:n) = int(global(n:1:-1), int64)
    o(1:n) = int(offset(n:1:-1), int64)
    c(1:n) = cnt(n:1:-1)
    m(1:n) = fshape(n:1:-1)
    mo(1:n) = moff(n:1:-1)
    nd = n
    if (cplx) then
      nd = n + 1
      g(nd) = 2
      o(nd) = 0
      c(nd) = 2
      m(nd) = 2
      mo(nd) = 0
    end if
    if (present(count) .or. present(memory_offset)) then
      s = from_c(c_protect_distributed_ghost(ck%h, cstr(name), dtype, p, int(nd, c_int), &
                                             g, o, c, m, mo))
    else
      s = from_c(c_protect_distributed(ck%h, cstr(name), dtype, p, int(nd, c_int), g, o, c))
    end if
    call finish(ck, s, status, .false.)
  end subroutine protect_block

  ! A replicated or per-rank value: shape reversed to C order, complex gets (..., 2).
  subroutine protect_value(ck, name, p, dtype, cplx, fshape, contig, replicated, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    type(c_ptr), intent(in) :: p
    integer(c_int), intent(in) :: dtype
    logical, intent(in) :: cplx, contig, replicated
    integer(int64), intent(in) :: fshape(:)
    integer, intent(out), optional :: status
    integer(int64) :: sh(size(fshape) + 1)
    integer :: n, nd, s
    character(:), allocatable :: op
    if (replicated) then
      op = "protect_replicated"
    else
      op = "protect_per_rank"
    end if
    n = size(fshape)
    s = CKPT_OK
    if (.not. c_associated(ck%h)) then
      s = local_fail(ck, op, "the handle is not open (call ckpt_open first)")
    else if (.not. contig) then
      s = local_fail(ck, op, "field '"//trim(name)//"': the array is not contiguous "// &
                     "(pass a whole array)")
    end if
    if (s /= CKPT_OK) then
      call finish(ck, s, status, .false.)
      return
    end if
    sh(1:n) = fshape(n:1:-1)
    nd = n
    if (cplx) then
      nd = n + 1
      sh(nd) = 2
    end if
    if (replicated) then
      s = from_c(c_protect_replicated(ck%h, cstr(name), dtype, p, int(nd, c_int), sh))
    else
      s = from_c(c_protect_per_rank(ck%h, cstr(name), dtype, p, int(nd, c_int), sh))
    end if
    call finish(ck, s, status, .false.)
  end subroutine protect_value

  !> Stores key=value as a root attribute of every later checkpoint. Local.
  subroutine ckpt_metadata(ck, key, value, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: key, value
    integer, intent(out), optional :: status
    call finish(ck, from_c(c_metadata(ck%h, cstr(key), cstr(value))), status, .false.)
  end subroutine ckpt_metadata

  ! ---- restore, step, save -------------------------------------------------------------

  subroutine restore_common(ck, step, restored, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(out) :: step
    logical, intent(out), optional :: restored
    integer, intent(out), optional :: status
    integer(c_int) :: r
    integer(c_int64_t) :: s64
    r = 0
    s64 = 0
    ck%restored = .true.
    call finish(ck, from_c(c_restore(ck%h, r, s64)), status, .true.)
    step = s64
    if (present(restored)) restored = r /= 0
  end subroutine restore_common

  !> Loads the newest valid checkpoint into the protected arrays. step: the restored step,
  !> 0 when there was none; restored: whether one was loaded. Protect every field first.
  !> Errors: CKPT_MISMATCH, CKPT_MISSING_FIELD, CKPT_RANK_COUNT, ... Collective.
  subroutine restore_i64(ck, step, restored, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(out) :: step
    logical, intent(out), optional :: restored
    integer, intent(out), optional :: status
    call restore_common(ck, step, restored, status)
  end subroutine restore_i64

  subroutine restore_i32(ck, step, restored, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int32), intent(out) :: step
    logical, intent(out), optional :: restored
    integer, intent(out), optional :: status
    integer(int64) :: s
    call restore_common(ck, s, restored, status)
    step = int(s, int32)
  end subroutine restore_i32

  subroutine step_common(ck, step, stop, time, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(in) :: step
    logical, intent(out), optional :: stop
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    integer(c_int) :: st
    real(c_double) :: t
    integer :: s
    t = real(step, c_double)
    if (present(time)) t = time
    st = 0
    s = from_c(c_step(ck%h, int(step, c_int64_t), t, st))
    if (present(stop)) stop = st /= 0
    call finish(ck, s, status, .true.)
    if (s == CKPT_OK .and. st /= 0) call stopped(ck)
  end subroutine step_common

  !> The per-step call, after `step` completed steps: checkpoints when the policy says so
  !> (every N steps or T seconds, a stop signal, the job time limit near). stop: .true.
  !> when the program should leave its loop (the checkpoint of `step` is durable) and exit
  !> with CKPT_EXIT_MORE_WORK (ckpt_exit_code). time: simulation time stored with the
  !> checkpoint (default: step). Collective.
  subroutine step_i64(ck, step, stop, time, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(in) :: step
    logical, intent(out), optional :: stop
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    call step_common(ck, step, stop, time, status)
  end subroutine step_i64

  subroutine step_i32(ck, step, stop, time, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int32), intent(in) :: step
    logical, intent(out), optional :: stop
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    call step_common(ck, int(step, int64), stop, time, status)
  end subroutine step_i32

  ! The loop helper on int64 steps; see steps_i64.
  function steps_common(ck, step, nsteps, time, status) result(more)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(inout) :: step
    integer(int64), intent(in) :: nsteps
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    logical :: more
    logical :: stop
    integer :: s
    more = .false.
    if (present(status)) status = CKPT_OK
    if (.not. ck%restored) then
      call restore_common(ck, step, status=s)
    else
      call step_common(ck, step, stop, time, s)
      if (s == CKPT_OK .and. stop) then   ! (with exit_on_stop, step_common did not return)
        s = from_c(c_close(ck%h))
        call finish(ck, s, status, .true.)
        return
      end if
    end if
    if (s /= CKPT_OK) then
      call finish(ck, s, status, .true.)
      return
    end if
    if (step >= nsteps) then
      s = from_c(c_close(ck%h))
      call finish(ck, s, status, .true.)
      return
    end if
    step = step + 1
    more = .true.
  end function steps_common

  !> The loop helper: `do while (ckpt_steps(ck, step, nsteps))` replaces
  !> `do step = 1, nsteps`. The first call restores the newest checkpoint (unless
  !> ckpt_restore was called: then `step` is taken as the number of steps done); every
  !> later call is the per-step call (ckpt_step) for the step just done. Inside the loop
  !> `step` is the number of the step being computed (1-based); after the loop it is the
  !> number of steps done (nsteps when finished, fewer after a stop, with
  !> ckpt_exit_code(ck) = 75). Returning .false., it closes the handle. time: simulation
  !> time of the step just done, for the checkpoint. Collective.
  function steps_i64(ck, step, nsteps, time, status) result(more)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(inout) :: step
    integer(int64), intent(in) :: nsteps
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    logical :: more
    more = steps_common(ck, step, nsteps, time, status)
  end function steps_i64

  function steps_i32(ck, step, nsteps, time, status) result(more)
    type(ckpt_handle), intent(inout) :: ck
    integer(int32), intent(inout) :: step
    integer(int32), intent(in) :: nsteps
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    logical :: more
    integer(int64) :: s
    s = step
    more = steps_common(ck, s, int(nsteps, int64), time, status)
    step = int(s, int32)
  end function steps_i32

  !> Writes a checkpoint of the protected arrays at `step` now; returns when it is
  !> committed. Collective.
  subroutine save_i64(ck, step, time, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int64), intent(in) :: step
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    real(c_double) :: t
    t = real(step, c_double)
    if (present(time)) t = time
    call finish(ck, from_c(c_save(ck%h, int(step, c_int64_t), t)), status, .true.)
  end subroutine save_i64

  subroutine save_i32(ck, step, time, status)
    type(ckpt_handle), intent(inout) :: ck
    integer(int32), intent(in) :: step
    real(real64), intent(in), optional :: time
    integer, intent(out), optional :: status
    call save_i64(ck, int(step, int64), time, status)
  end subroutine save_i32

  !> Asks for "checkpoint and stop" at the next ckpt_step. Local.
  subroutine ckpt_request_stop(ck, status)
    type(ckpt_handle), intent(inout) :: ck
    integer, intent(out), optional :: status
    integer :: s
    if (.not. c_associated(ck%h)) then
      s = local_fail(ck, "request_stop", "the handle is not open")
    else
      s = from_c(c_request_stop(ck%h))
    end if
    call finish(ck, s, status, .false.)
  end subroutine ckpt_request_stop

  !> 0, or CKPT_EXIT_MORE_WORK (75) once a stop was reported (also after ckpt_close).
  !> Local.
  integer function ckpt_exit_code(ck)
    type(ckpt_handle), intent(in) :: ck
    ckpt_exit_code = merge(CKPT_EXIT_MORE_WORK, 0, ck%stopped)
  end function ckpt_exit_code

  !> Finishes pending writes and frees the checkpointer. Closing a closed handle does
  !> nothing. Collective.
  subroutine ckpt_close(ck, status)
    type(ckpt_handle), intent(inout) :: ck
    integer, intent(out), optional :: status
    call finish(ck, from_c(c_close(ck%h)), status, .true.)
  end subroutine ckpt_close

  !> Message of the last failed call on this thread ("" when none failed), e.g.
  !> "ckpt[rank 3] restore: field 'u' has global shape [64, 96] in ...". Local.
  function ckpt_last_error() result(msg)
    character(:), allocatable :: msg
    if (local_is_last) then
      msg = local_error
    else
      msg = fstr(c_last_error())
    end if
  end function ckpt_last_error

  !> Short stable name of a status, e.g. "mismatch". Local.
  function ckpt_status_name(status) result(name)
    integer, intent(in) :: status
    character(:), allocatable :: name
    name = fstr(c_status_name(int(status, c_int)))
  end function ckpt_status_name

  !> Library version, e.g. "0.1.0". Local.
  function ckpt_version() result(v)
    character(:), allocatable :: v
    v = fstr(c_version())
  end function ckpt_version

  ! --- generated: ckpt_protect_distributed, one per type and rank ---

  subroutine pd_r32_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_r32_1

  subroutine pd_r32_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_r32_2

  subroutine pd_r32_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_r32_3

  subroutine pd_r64_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_r64_1

  subroutine pd_r64_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_r64_2

  subroutine pd_r64_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_r64_3

  subroutine pd_i32_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_i32_1

  subroutine pd_i32_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_i32_2

  subroutine pd_i32_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_i32_3

  subroutine pd_i64_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_i64_1

  subroutine pd_i64_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_i64_2

  subroutine pd_i64_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_i64_3

  subroutine pd_l_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_l_1

  subroutine pd_l_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_l_2

  subroutine pd_l_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_l_3

  subroutine pd_c32_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_c32_1

  subroutine pd_c32_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_c32_2

  subroutine pd_c32_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_c32_3

  subroutine pd_c64_1(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_c64_1

  subroutine pd_c64_2(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_c64_2

  subroutine pd_c64_3(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:,:,:)
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine pd_c64_3

  ! --- generated: ckpt_protect_replicated ---

  subroutine rep_r32_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_r32_0

  subroutine rep_r32_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_r32_1

  subroutine rep_r32_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_r32_2

  subroutine rep_r32_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_r32_3

  subroutine rep_r64_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_r64_0

  subroutine rep_r64_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_r64_1

  subroutine rep_r64_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_r64_2

  subroutine rep_r64_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_r64_3

  subroutine rep_i32_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_i32_0

  subroutine rep_i32_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_i32_1

  subroutine rep_i32_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_i32_2

  subroutine rep_i32_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_i32_3

  subroutine rep_i64_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_i64_0

  subroutine rep_i64_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_i64_1

  subroutine rep_i64_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_i64_2

  subroutine rep_i64_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_i64_3

  subroutine rep_l_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_l_0

  subroutine rep_l_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_l_1

  subroutine rep_l_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_l_2

  subroutine rep_l_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_l_3

  subroutine rep_c32_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_c32_0

  subroutine rep_c32_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_c32_1

  subroutine rep_c32_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_c32_2

  subroutine rep_c32_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_c32_3

  subroutine rep_c64_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       [integer(int64) ::], .true., .true., status)
  end subroutine rep_c64_0

  subroutine rep_c64_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_c64_1

  subroutine rep_c64_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_c64_2

  subroutine rep_c64_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), .true., status)
  end subroutine rep_c64_3

  ! --- generated: ckpt_protect_per_rank ---

  subroutine pr_r32_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_r32_0

  subroutine pr_r32_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_r32_1

  subroutine pr_r32_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_r32_2

  subroutine pr_r32_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_r32_3

  subroutine pr_r64_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_r64_0

  subroutine pr_r64_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_r64_1

  subroutine pr_r64_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_r64_2

  subroutine pr_r64_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_r64_3

  subroutine pr_i32_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_i32_0

  subroutine pr_i32_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_i32_1

  subroutine pr_i32_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_i32_2

  subroutine pr_i32_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I32, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_i32_3

  subroutine pr_i64_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_i64_0

  subroutine pr_i64_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_i64_1

  subroutine pr_i64_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_i64_2

  subroutine pr_i64_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_I64, .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_i64_3

  subroutine pr_l_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_l_0

  subroutine pr_l_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_l_1

  subroutine pr_l_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_l_2

  subroutine pr_l_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    logical, intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, logical_dtype(storage_size(a)), .false., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_l_3

  subroutine pr_c32_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_c32_0

  subroutine pr_c32_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_c32_1

  subroutine pr_c32_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_c32_2

  subroutine pr_c32_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F32, .true., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_c32_3

  subroutine pr_c64_0(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       [integer(int64) ::], .true., .false., status)
  end subroutine pr_c64_0

  subroutine pr_c64_1(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_c64_1

  subroutine pr_c64_2(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_c64_2

  subroutine pr_c64_3(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    complex(real64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: status
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_value(ck, name, p, CKPT_F64, .true., &
                       shape(a, kind=int64), is_contiguous(a), .false., status)
  end subroutine pr_c64_3

end module ckpt
