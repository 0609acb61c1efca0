! The Fortran module from an installed ckpt: save a distributed 2-D block and a replicated
! scalar, restore them through a second handle (an integer communicator, as with
! `use mpi`) into zeroed arrays, and check every value. Exit 1 on any difference.
program consumer_f
  use, intrinsic :: iso_fortran_env, only: real64
  use mpi_f08
  use ckpt
  implicit none
  type(ckpt_handle) :: ck
  real(real64), allocatable, target :: x(:, :), y(:, :)
  real(real64), target :: h = 0.125_real64, h2 = 0
  integer :: rank, nranks, s, bad, anybad, i, j, step
  logical :: restored
  character(256) :: dir

  call MPI_Init()
  call MPI_Comm_rank(MPI_COMM_WORLD, rank)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks)
  call get_command_argument(1, dir)
  allocate (x(4, 3), y(4, 3))
  do j = 1, 3
    do i = 1, 4
      x(i, j) = 4 * rank + i + 100 * j + 0.5_real64
    end do
  end do
  y = 0
  bad = 0

  call ckpt_open(ck, MPI_COMM_WORLD, dir, status=s, quiet=.true.)
  if (s == CKPT_OK) call ckpt_protect_distributed(ck, "x", x, [4 * nranks, 3], [4 * rank, 0], status=s)
  if (s == CKPT_OK) call ckpt_protect_replicated(ck, "h", h, status=s)
  if (s == CKPT_OK) call ckpt_save(ck, 3, status=s)
  if (s == CKPT_OK) call ckpt_close(ck, status=s)
  if (s == CKPT_OK) call ckpt_open(ck, MPI_COMM_WORLD%MPI_VAL, dir, status=s, quiet=.true.)
  if (s == CKPT_OK) call ckpt_protect_distributed(ck, "x", y, [4 * nranks, 3], [4 * rank, 0], status=s)
  if (s == CKPT_OK) call ckpt_protect_replicated(ck, "h", h2, status=s)
  if (s == CKPT_OK) call ckpt_restore(ck, step, restored, status=s)
  if (s == CKPT_OK) call ckpt_close(ck, status=s)
  if (s /= CKPT_OK) then
    write (*, '(a,a,a,a)') "Fortran consumer: ", ckpt_status_name(s), ": ", ckpt_last_error()
    bad = 1
  end if
  if (.not. restored .or. step /= 3 .or. any(abs(y - x) > 0) .or. abs(h2 - h) > 0) bad = 1

  call MPI_Allreduce(bad, anybad, 1, MPI_INTEGER, MPI_MAX, MPI_COMM_WORLD)
  if (rank == 0) write (*, '(a,a,a,i0,a,a)') "Fortran consumer: ckpt ", ckpt_version(), &
    ", restored step ", step, ": ", trim(merge("FAILED", "ok    ", anybad /= 0))
  call MPI_Finalize()
  if (anybad /= 0) stop 1
end program consumer_f
