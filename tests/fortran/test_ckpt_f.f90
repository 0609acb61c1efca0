! Tests of the Fortran module `ckpt`, run on 1, 2 and 4 ranks by test_fortran.py, which
! then opens DIR/save with h5py and checks values at known global coordinates.
!
!   test_ckpt_f DIR          the tests below
!   test_ckpt_f DIR die      after the tests: a restore with another global shape and
!                            no status argument, which must end the program (status 1,
!                            the message printed once, by rank 0)
!
! 1. DIR/save: distributed blocks of every type at rank 2 (split along the fastest
!    dimension), rank 1 and rank 3 arrays, a block with ghost cells, replicated and
!    per-rank values; saved at step 3 through a type(MPI_Comm) handle, restored into
!    zeroed arrays through an integer (use mpi) handle; every value checked.
! 2. Errors: open on MPI_COMM_NULL, protect after restore, a non-contiguous section, wrong number of extents,
!    a restore with another global shape (CKPT_MISMATCH on every rank), status names.
! 3. DIR/loop: the loop helper ckpt_steps with a stop request: stops after a checkpoint
!    with exit code 75 (no exit_on_stop), then a new handle resumes and finishes.
! Prints "fortran tests: ok" on rank 0 when every rank passed; exit status 1 otherwise.
program test_ckpt_f
  use, intrinsic :: iso_fortran_env, only: int32, int64, real32, real64, error_unit
  use mpi_f08
  use mpi, only: world_int => MPI_COMM_WORLD
  use ckpt
  implicit none
  integer :: rank, p, nbad = 0, anybad
  character(512) :: dir
  type(ckpt_handle) :: ck

  ! rank-2 blocks: global (3p, 5), this rank owns i = 3r+1 .. 3r+3 (the fast dimension)
  real(real32), allocatable, target :: r32(:, :)
  real(real64), allocatable, target :: r64(:, :), ghost(:, :)
  integer(int32), allocatable, target :: i32(:, :)
  integer(int64), allocatable, target :: i64(:, :)
  logical, allocatable, target :: lg(:, :)
  complex(real32), allocatable, target :: c32(:, :)
  complex(real64), allocatable, target :: c64(:, :)
  ! rank 1: global (4p), rank 3: global (4, 3, 2p), split along k
  real(real64), allocatable, target :: v1(:)
  integer(int64), allocatable, target :: k1(:)
  logical, allocatable, target :: l1(:)
  real(real32), allocatable, target :: s3(:, :, :)
  integer(int32), allocatable, target :: n3(:, :, :)
  complex(real64), allocatable, target :: z3(:, :, :)
  ! values
  real(real64), target :: h
  integer(int64), target :: nsum, mine
  integer(int32), target :: params(3)
  complex(real64), target :: zc
  real(real64), target :: rng(2)

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, p)
  if (command_argument_count() < 1 .or. command_argument_count() > 2) then
    if (rank == 0) write (error_unit, '(a)') "usage: test_ckpt_f DIR [die]"
    call MPI_Abort(MPI_COMM_WORLD, 2)
  end if
  call get_command_argument(1, dir)
  if (command_argument_count() == 2) then
    call die_without_status()
    call MPI_Finalize()
    stop 3   ! not reached: the failed restore ends the program
  end if

  allocate (r32(3, 5), r64(3, 5), i32(3, 5), i64(3, 5), lg(3, 5), c32(3, 5), c64(3, 5))
  allocate (ghost(0:4, 0:6), v1(4), k1(4), l1(4), s3(4, 3, 2), n3(4, 3, 2), z3(4, 3, 2))

  call test_save_restore()
  call test_errors()
  call test_loop()

  call MPI_Allreduce(nbad, anybad, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD)
  if (rank == 0) then
    if (anybad == 0) then
      write (*, '(a,a,a,i0,a)') "fortran tests: ok (ckpt ", ckpt_version(), ", ", p, " ranks)"
    else
      write (*, '(a,i0,a)') "fortran tests: FAILED (", anybad, " checks)"
    end if
  end if
  call MPI_Finalize()
  if (anybad /= 0) stop 1

contains

  subroutine die_without_status()
    real(real64), allocatable, target :: wrong(:, :)
    integer :: step
    allocate (wrong(3, 6))
    call ckpt_open(ck, MPI_COMM_WORLD, trim(dir)//"/save", quiet=.true.)
    call ckpt_protect_distributed(ck, "r64", wrong, [3 * p, 6], [3 * rank, 0])
    call ckpt_restore(ck, step)
    if (rank == 0) write (*, '(a)') "restore without status returned"
  end subroutine die_without_status

  subroutine expect(ok, what)
    logical, intent(in) :: ok
    character(*), intent(in) :: what
    if (.not. ok) then
      nbad = nbad + 1
      write (error_unit, '(a,i0,a,a)') "rank ", rank, ": FAILED: ", what
    end if
  end subroutine expect

  subroutine expect_ok(s, what)
    integer, intent(in) :: s
    character(*), intent(in) :: what
    if (s /= CKPT_OK) then
      nbad = nbad + 1
      write (error_unit, '(a,i0,a,a,a,a,a,a)') "rank ", rank, ": FAILED: ", what, ": ", &
        ckpt_status_name(s), ": ", ckpt_last_error()
    end if
  end subroutine expect_ok

  ! v(i, j, k) at global 1-based coordinates: the value every test array holds
  pure real(real64) function v(i, j, k)
    integer, intent(in) :: i, j, k
    v = i + 10 * j + 100 * k
  end function v

  subroutine fill()
    integer :: i, j, k, gi, gk
    do j = 1, 5
      do i = 1, 3
        gi = 3 * rank + i
        r32(i, j) = real(v(gi, j, 0), real32)
        r64(i, j) = v(gi, j, 0) + 0.5_real64
        i32(i, j) = int(v(gi, j, 0), int32)
        i64(i, j) = int(v(gi, j, 0), int64) + 2_int64**40
        lg(i, j) = mod(gi + j, 2) == 0
        c32(i, j) = cmplx(v(gi, j, 0), -v(gi, j, 0), real32)
        c64(i, j) = cmplx(v(gi, j, 0), 0.25_real64, real64)
      end do
    end do
    ghost = -1
    do j = 1, 5
      do i = 1, 3
        ghost(i, j) = v(3 * rank + i, j, 0)   ! owned block at memory_offset [1, 1]
      end do
    end do
    do i = 1, 4
      v1(i) = v(4 * rank + i, 0, 0)
      k1(i) = -int(v(4 * rank + i, 0, 0), int64)
      l1(i) = mod(4 * rank + i, 3) == 0
    end do
    do k = 1, 2
      gk = 2 * rank + k
      do j = 1, 3
        do i = 1, 4
          s3(i, j, k) = real(v(i, j, gk), real32)
          n3(i, j, k) = int(v(i, j, gk), int32)
          z3(i, j, k) = cmplx(v(i, j, gk), v(i, j, gk) / 2, real64)
        end do
      end do
    end do
    h = 0.125_real64
    nsum = 123456789012_int64
    params = [7, 8, 9]
    zc = (1.5_real64, -2.5_real64)
    mine = 1000_int64 + rank
    rng = [real(rank, real64), 0.5_real64]
  end subroutine fill

  subroutine zero()
    r32 = 0; r64 = 0; i32 = 0; i64 = 0; lg = .false.; c32 = 0; c64 = 0
    ghost = -1; ghost(1:3, 1:5) = 0
    v1 = 0; k1 = 0; l1 = .false.; s3 = 0; n3 = 0; z3 = 0
    h = 0; nsum = 0; params = 0; zc = 0; mine = 0; rng = 0
  end subroutine zero

  subroutine protect_all(s)
    integer, intent(out) :: s
    integer :: g2(2), o2(2)
    g2 = [3 * p, 5]
    o2 = [3 * rank, 0]
    s = CKPT_OK
    call ckpt_protect_distributed(ck, "r32", r32, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "r64", r64, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "i32", i32, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "i64", i64, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "lg", lg, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "c32", c32, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "c64", c64, g2, o2, status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "ghost", ghost, g2, o2, status=s, count=[3, 5], &
                                  memory_offset=[1, 1]); if (s /= 0) return
    call ckpt_protect_distributed(ck, "v1", v1, [4 * p], [4 * rank], status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "k1", k1, [4 * p], [4 * rank], status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "l1", l1, [4 * p], [4 * rank], status=s); if (s /= 0) return
    call ckpt_protect_distributed(ck, "s3", s3, [4, 3, 2 * p], [0, 0, 2 * rank], status=s)
    if (s /= 0) return
    call ckpt_protect_distributed(ck, "n3", n3, [4, 3, 2 * p], [0, 0, 2 * rank], status=s)
    if (s /= 0) return
    call ckpt_protect_distributed(ck, "z3", z3, [4, 3, 2 * p], [0, 0, 2 * rank], status=s)
    if (s /= 0) return
    call ckpt_protect_replicated(ck, "h", h, status=s); if (s /= 0) return
    call ckpt_protect_replicated(ck, "nsum", nsum, status=s); if (s /= 0) return
    call ckpt_protect_replicated(ck, "params", params, status=s); if (s /= 0) return
    call ckpt_protect_replicated(ck, "zc", zc, status=s); if (s /= 0) return
    call ckpt_protect_per_rank(ck, "mine", mine, status=s); if (s /= 0) return
    call ckpt_protect_per_rank(ck, "rng", rng, status=s)
  end subroutine protect_all

  subroutine test_save_restore()
    integer :: s, i, j, k, gi, gk
    integer(int64) :: step
    logical :: restored
    call fill()
    call ckpt_open(ck, MPI_COMM_WORLD, trim(dir)//"/save", status=s, quiet=.true.)
    call expect_ok(s, "open (type(MPI_Comm))")
    call protect_all(s)
    call expect_ok(s, "protect")
    call ckpt_metadata(ck, "solver", "test_ckpt_f", status=s)
    call expect_ok(s, "metadata")
    call ckpt_save(ck, 3, time=0.75_real64, status=s)
    call expect_ok(s, "save")
    call ckpt_close(ck, status=s)
    call expect_ok(s, "close")

    call zero()
    call ckpt_open(ck, world_int, trim(dir)//"/save", status=s, quiet=.true.)
    call expect_ok(s, "open (integer communicator)")
    call protect_all(s)
    call expect_ok(s, "protect 2")
    call ckpt_restore(ck, step, restored, status=s)
    call expect_ok(s, "restore")
    call expect(restored .and. step == 3, "restored step 3")
    ! protecting after a restore fails on this rank, with the C API's message
    call ckpt_protect_replicated(ck, "late", h, status=s)
    call expect(s == CKPT_INVALID_ARGUMENT, "protect after restore: invalid_argument")
    call expect(index(ckpt_last_error(), "after ckpt_restore") > 0, &
                "protect after restore: message: "//ckpt_last_error())
    call ckpt_close(ck, status=s)
    call expect_ok(s, "close 2")

    do j = 1, 5
      do i = 1, 3
        gi = 3 * rank + i
        call expect(r32(i, j) == real(v(gi, j, 0), real32), "r32")
        call expect(r64(i, j) == v(gi, j, 0) + 0.5_real64, "r64")
        call expect(i32(i, j) == int(v(gi, j, 0), int32), "i32")
        call expect(i64(i, j) == int(v(gi, j, 0), int64) + 2_int64**40, "i64")
        call expect(lg(i, j) .eqv. (mod(gi + j, 2) == 0), "logical")
        call expect(c32(i, j) == cmplx(v(gi, j, 0), -v(gi, j, 0), real32), "c32")
        call expect(c64(i, j) == cmplx(v(gi, j, 0), 0.25_real64, real64), "c64")
        call expect(ghost(i, j) == v(gi, j, 0), "ghost block")
      end do
    end do
    call expect(all(ghost(0, :) == -1) .and. all(ghost(4, :) == -1) .and. &
                all(ghost(:, 0) == -1) .and. all(ghost(:, 6) == -1), "ghost cells untouched")
    do i = 1, 4
      call expect(v1(i) == v(4 * rank + i, 0, 0), "v1")
      call expect(k1(i) == -int(v(4 * rank + i, 0, 0), int64), "k1")
      call expect(l1(i) .eqv. (mod(4 * rank + i, 3) == 0), "l1")
    end do
    do k = 1, 2
      gk = 2 * rank + k
      do j = 1, 3
        do i = 1, 4
          call expect(s3(i, j, k) == real(v(i, j, gk), real32), "s3")
          call expect(n3(i, j, k) == int(v(i, j, gk), int32), "n3")
          call expect(z3(i, j, k) == cmplx(v(i, j, gk), v(i, j, gk) / 2, real64), "z3")
        end do
      end do
    end do
    call expect(h == 0.125_real64, "replicated scalar real64")
    call expect(nsum == 123456789012_int64, "replicated scalar int64")
    call expect(all(params == [7, 8, 9]), "replicated int32 array")
    call expect(zc == (1.5_real64, -2.5_real64), "replicated complex scalar")
    call expect(mine == 1000_int64 + rank, "per-rank scalar")
    call expect(all(rng == [real(rank, real64), 0.5_real64]), "per-rank array")
  end subroutine test_save_restore

  subroutine test_errors()
    integer :: s
    integer(int32) :: step
    real(real64), allocatable, target :: wrong(:, :)
    call ckpt_open(ck, MPI_COMM_NULL, trim(dir)//"/null", status=s)
    call expect(s == CKPT_INVALID_ARGUMENT, "open on MPI_COMM_NULL refused")
    call expect(index(ckpt_last_error(), "MPI_COMM_NULL") > 0, "message: "//ckpt_last_error())
    call ckpt_open(ck, MPI_COMM_WORLD, trim(dir)//"/save", status=s, quiet=.true.)
    call expect_ok(s, "open 3")
    ! a section with a stride is not contiguous: refused, not silently copied
    call ckpt_protect_distributed(ck, "sec", r64(1:3:2, :), [2 * p, 5], [2 * rank, 0], status=s)
    call expect(s == CKPT_INVALID_ARGUMENT, "non-contiguous section refused")
    call expect(index(ckpt_last_error(), "not contiguous") > 0, "message: "//ckpt_last_error())
    call expect(index(ckpt_last_error(), "field 'sec'") > 0, "message names the field")
    call ckpt_protect_distributed(ck, "bad", r64, [3 * p], [3 * rank], status=s)
    call expect(s == CKPT_INVALID_ARGUMENT, "wrong number of extents refused")
    call ckpt_protect_distributed(ck, "out", r64, [3 * p, 5], [3 * p, 0], status=s)
    call expect(s == CKPT_INVALID_ARGUMENT, "block outside the global array refused (C API)")
    call expect(len(ckpt_last_error()) > 0, "C API message")
    ! the checkpoint has r64 at (3p, 5): another global shape is a mismatch on every rank
    allocate (wrong(3, 6))
    wrong = 0
    call ckpt_protect_distributed(ck, "r64", wrong, [3 * p, 6], [3 * rank, 0], status=s)
    call expect_ok(s, "protect wrong shape")
    call ckpt_restore(ck, step, status=s)
    call expect(s == CKPT_MISMATCH, "restore with another global shape: mismatch, got "// &
                ckpt_status_name(s))
    call expect(index(ckpt_last_error(), "'r64'") > 0, "mismatch names the field: "// &
                ckpt_last_error())
    call expect(ckpt_status_name(CKPT_MISMATCH) == "mismatch", "status name")
    call ckpt_close(ck, status=s)
    call expect_ok(s, "close 3")
    call ckpt_close(ck, status=s)
    call expect_ok(s, "closing a closed handle")
  end subroutine test_errors

  subroutine test_loop()
    integer :: s, step, done
    real(real64), allocatable, target :: x(:)
    allocate (x(2))
    x = 0
    call ckpt_open(ck, MPI_COMM_WORLD, trim(dir)//"/loop", status=s, every=4, quiet=.true.)
    call expect_ok(s, "open loop")
    call ckpt_protect_distributed(ck, "x", x, [2 * p], [2 * rank], status=s)
    step = -7   ! set by the first call
    done = 0
    do while (ckpt_steps(ck, step, 10, status=s))
      x = x + step
      done = done + 1
      if (step == 6) call ckpt_request_stop(ck)
    end do
    call expect_ok(s, "loop")
    call expect(done == step .and. (step == 6 .or. step == 7), "loop stopped at step 6 or 7")
    call expect(ckpt_exit_code(ck) == CKPT_EXIT_MORE_WORK, "exit code 75 after a stop")
    x = -1
    call ckpt_open(ck, MPI_COMM_WORLD, trim(dir)//"/loop", status=s, every=4, quiet=.true.)
    call expect_ok(s, "reopen loop")
    call expect(ckpt_exit_code(ck) == 0, "exit code 0 on a new handle")
    call ckpt_protect_distributed(ck, "x", x, [2 * p], [2 * rank], status=s)
    done = step
    do while (ckpt_steps(ck, step, 10, status=s))
      call expect(step == done + 1, "resumed after the stop step")
      done = step
      x = x + step
    end do
    call expect_ok(s, "loop 2")
    call expect(step == 10 .and. all(x == 55), "loop finished: x = 1 + ... + 10")
    call expect(ckpt_exit_code(ck) == 0, "exit code 0 after finishing")
  end subroutine test_loop

end program test_ckpt_f
