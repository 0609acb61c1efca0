! fortran_heat: the 2-D heat equation, explicit finite differences, in Fortran 2008 + MPI
! (mpi_f08), block-decomposed over a 2-D Cartesian grid of ranks with halo exchange, made
! restartable with ckpt. The lines marked "! ckpt" are all it takes (docs/fortran.md).
!
!   fortran_heat [-nx N] [-ny N] [-s steps] [-e every] [-d dir]
!
! The grid u(nx, ny) starts at u(i, j) = mod(i*i + 3*j, 17) / 16 with u = 0 outside.
! Prints `result: <digest>` of the final field, which is bitwise the same on any number of
! ranks and after any number of restarts. After a stop signal (SIGUSR1, SIGTERM) it
! checkpoints and exits with status 75.
program fortran_heat
  use, intrinsic :: iso_fortran_env, only: int8, int64, real64, error_unit
  use mpi_f08
  use ckpt                                                                      ! ckpt
  implicit none
  real(real64), parameter :: r = 0.2_real64   ! alpha * dt / dx**2, stable below 0.25
  integer :: nx = 96, ny = 64, nsteps = 400, every = 50
  character(256) :: dir = "fortran-heat-ckpt"
  type(MPI_Comm) :: cart
  integer :: rank, nranks, dims(2), coords(2), left, right, down, up
  integer :: i0, j0, mx, my, i, j, step
  real(real64), allocatable, target :: u(:, :)
  real(real64), allocatable :: un(:, :)
  type(ckpt_handle) :: ck                                                       ! ckpt

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks)
  call parse_args()

  ! 2-D block decomposition: dims(1) ranks along i (x), dims(2) along j (y)
  dims = 0
  call MPI_Dims_create(nranks, 2, dims)
  call MPI_Cart_create(MPI_COMM_WORLD, 2, dims, [.false., .false.], .false., cart)
  call MPI_Cart_coords(cart, rank, 2, coords)
  call MPI_Cart_shift(cart, 0, 1, left, right)
  call MPI_Cart_shift(cart, 1, 1, down, up)
  i0 = coords(1) * nx / dims(1)        ! 0-based offset of this rank's block
  j0 = coords(2) * ny / dims(2)
  mx = (coords(1) + 1) * nx / dims(1) - i0
  my = (coords(2) + 1) * ny / dims(2) - j0

  allocate (u(0:mx + 1, 0:my + 1), un(mx, my))   ! one ghost layer around the block
  u = 0
  do j = 1, my
    do i = 1, mx
      u(i, j) = real(mod((i0 + i)**2 + 3 * (j0 + j), 17), real64) / 16
    end do
  end do

  call ckpt_open(ck, MPI_COMM_WORLD, dir, every=every, exit_on_stop=.true.)     ! ckpt
  call ckpt_protect_distributed(ck, "u", u, [nx, ny], [i0, j0], count=[mx, my], memory_offset=[1, 1]) ! ckpt

  step = 0
  do while (ckpt_steps(ck, step, nsteps))               ! ckpt (was: do step = 1, nsteps)
    call exchange_halo()
    do j = 1, my
      do i = 1, mx
        un(i, j) = u(i, j) + r * (((u(i - 1, j) + u(i + 1, j)) + (u(i, j - 1) + u(i, j + 1))) &
                                  - 4 * u(i, j))
      end do
    end do
    u(1:mx, 1:my) = un
  end do

  call report()
  call MPI_Finalize()

contains

  subroutine parse_args()
    character(256) :: a, v
    integer :: k, ios
    k = 1
    do while (k <= command_argument_count())
      call get_command_argument(k, a)
      call get_command_argument(k + 1, v)
      ios = 0
      select case (a)
      case ("-nx")
        read (v, *, iostat=ios) nx
      case ("-ny")
        read (v, *, iostat=ios) ny
      case ("-s")
        read (v, *, iostat=ios) nsteps
      case ("-e")
        read (v, *, iostat=ios) every
      case ("-d")
        dir = v
      case default
        ios = 1
      end select
      if (ios /= 0 .or. k + 1 > command_argument_count()) then
        if (rank == 0) write (error_unit, '(a)') &
          "usage: fortran_heat [-nx N] [-ny N] [-s steps] [-e every] [-d dir]"
        call MPI_Finalize()
        stop 2
      end if
      k = k + 2
    end do
  end subroutine parse_args

  ! Ghost cells from the four neighbours (MPI_PROC_NULL at the boundary leaves them 0).
  subroutine exchange_halo()
    real(real64) :: sbuf(my), rbuf(my)
    type(MPI_Status) :: st
    ! columns j = 1 and j = my are contiguous in memory
    call MPI_Sendrecv(u(0:mx + 1, my), mx + 2, MPI_DOUBLE_PRECISION, up, 1, &
                      u(0:mx + 1, 0), mx + 2, MPI_DOUBLE_PRECISION, down, 1, cart, st)
    call MPI_Sendrecv(u(0:mx + 1, 1), mx + 2, MPI_DOUBLE_PRECISION, down, 2, &
                      u(0:mx + 1, my + 1), mx + 2, MPI_DOUBLE_PRECISION, up, 2, cart, st)
    ! rows i = 1 and i = mx are strided: through buffers
    sbuf = u(mx, 1:my)
    rbuf = 0
    call MPI_Sendrecv(sbuf, my, MPI_DOUBLE_PRECISION, right, 3, &
                      rbuf, my, MPI_DOUBLE_PRECISION, left, 3, cart, st)
    if (left /= MPI_PROC_NULL) u(0, 1:my) = rbuf
    sbuf = u(1, 1:my)
    rbuf = 0
    call MPI_Sendrecv(sbuf, my, MPI_DOUBLE_PRECISION, left, 4, &
                      rbuf, my, MPI_DOUBLE_PRECISION, right, 4, cart, st)
    if (right /= MPI_PROC_NULL) u(mx + 1, 1:my) = rbuf
  end subroutine exchange_halo

  ! Gathers the field on rank 0 and prints its digest (FNV-1a 64 of the bytes of the
  ! global array in Fortran order) and a sample value.
  subroutine report()
    integer :: info(4), k, p
    integer, allocatable :: all(:, :), counts(:), displs(:)
    real(real64), allocatable :: blk(:), recv(:), g(:, :)
    info = [i0, j0, mx, my]
    allocate (all(4, nranks), counts(nranks), displs(nranks), blk(mx * my))
    call MPI_Gather(info, 4, MPI_INTEGER, all, 4, MPI_INTEGER, 0, MPI_COMM_WORLD)
    blk = reshape(u(1:mx, 1:my), [mx * my])
    counts = all(3, :) * all(4, :)
    displs = 0
    do p = 2, nranks
      displs(p) = displs(p - 1) + counts(p - 1)
    end do
    allocate (recv(max(1, sum(counts))))
    call MPI_Gatherv(blk, mx * my, MPI_DOUBLE_PRECISION, recv, counts, displs, &
                     MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD)
    if (rank /= 0) return
    allocate (g(nx, ny))
    do p = 1, nranks
      k = displs(p)
      do j = 1, all(4, p)
        do i = 1, all(3, p)
          k = k + 1
          g(all(1, p) + i, all(2, p) + j) = recv(k)
        end do
      end do
    end do
    write (*, '(a,i0,a,i0,a,i0,a,i0,a,i0,a,i0,a)') "fortran_heat: nx=", nx, " ny=", ny, &
      " steps=", step, " ranks=", nranks, " (", dims(1), " x ", dims(2), ")"
    write (*, '(a,es23.16)') "u(17,5): ", g(17, 5)
    write (*, '(a,a)') "result: ", digest(g)
  end subroutine report

  ! FNV-1a 64 over the bytes of g, in two 32-bit halves so no integer overflows.
  function digest(g) result(hex)
    real(real64), intent(in) :: g(:, :)
    character(16) :: hex
    integer(int64), parameter :: two32 = 4294967296_int64
    integer(int64) :: lo, hi, t, carry
    integer(int8) :: b(8)
    integer :: i, j, k
    hi = int(z'cbf29ce4', int64)
    lo = int(z'84222325', int64)
    do j = 1, size(g, 2)
      do i = 1, size(g, 1)
        b = transfer(g(i, j), b)
        do k = 1, 8
          lo = ieor(lo, iand(int(b(k), int64), 255_int64))
          ! (hi * 2**32 + lo) * (2**40 + 435) mod 2**64
          t = lo * 435
          carry = t / two32
          hi = mod(hi * 435 + carry + mod(lo, 16777216_int64) * 256, two32)
          lo = mod(t, two32)
        end do
      end do
    end do
    write (hex, '(z8.8,z8.8)') hi, lo
    do k = 1, len(hex)   ! lower case, as the C and C++ solvers print theirs
      if (hex(k:k) >= "A" .and. hex(k:k) <= "F") hex(k:k) = achar(iachar(hex(k:k)) + 32)
    end do
  end function digest

end program fortran_heat
