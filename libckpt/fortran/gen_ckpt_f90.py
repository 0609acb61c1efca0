#!/usr/bin/python3
"""Writes ckpt.f90, the Fortran 2008 module `ckpt`, next to this script.

The module has one specific procedure per element type and rank behind each generic
(ckpt_protect_distributed, ckpt_protect_replicated, ckpt_protect_per_rank): 7 types x
ranks 1-3 (0-3 for the value kinds) is 77 near-identical procedures, so they are
generated. Every specific only takes the address and the shape of its array and calls one
hand-written routine (the part of ckpt.f90 between the generated blocks, kept in
ckpt_body.f90.in). ckpt.f90 is checked in, so building needs no Python; after editing the
template or this script run it again:

    /usr/bin/python3 libckpt/fortran/gen_ckpt_f90.py

With --check it writes nothing and exits 1 when ckpt.f90 is not what it would write (a
ctest, fortran_module_generated, runs that).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# suffix, Fortran type, C dtype expression, complex?
TYPES = [
    ("r32", "real(real32)", "CKPT_F32", False),
    ("r64", "real(real64)", "CKPT_F64", False),
    ("i32", "integer(int32)", "CKPT_I32", False),
    ("i64", "integer(int64)", "CKPT_I64", False),
    ("l", "logical", "logical_dtype(storage_size(a))", False),
    ("c32", "complex(real32)", "CKPT_F32", True),
    ("c64", "complex(real64)", "CKPT_F64", True),
]


def dims(rank):
    return "" if rank == 0 else "(" + ",".join([":"] * rank) + ")"


def gen_distributed():
    out = []
    for suf, ftype, dtype, cplx in TYPES:
        for r in (1, 2, 3):
            name = f"pd_{suf}_{r}"
            out.append(f"""  subroutine {name}(ck, name, a, global, offset, status, count, memory_offset)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    {ftype}, intent(inout), target :: a{dims(r)}
    integer, intent(in) :: global(:), offset(:)
    integer, intent(out), optional :: status
    integer, intent(in), optional :: count(:), memory_offset(:)
    type(c_ptr) :: p
    p = c_null_ptr
    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)
    call protect_block(ck, name, p, {dtype}, {".true." if cplx else ".false."}, &
                       shape(a, kind=int64), is_contiguous(a), global, offset, count, &
                       memory_offset, status)
  end subroutine {name}
""")
    return "\n".join(out)


def gen_values(kind):
    # kind: "rep" (replicated) or "pr" (per rank)
    out = []
    repl = ".true." if kind == "rep" else ".false."
    for suf, ftype, dtype, cplx in TYPES:
        for r in (0, 1, 2, 3):
            name = f"{kind}_{suf}_{r}"
            if r == 0:
                body = "    p = c_loc(a)\n"
                shp = "[integer(int64) ::]"
                contig = ".true."
            else:
                body = "    p = c_null_ptr\n    if (size(a) > 0 .and. is_contiguous(a)) p = c_loc(a)\n"
                shp = "shape(a, kind=int64)"
                contig = "is_contiguous(a)"
            out.append(f"""  subroutine {name}(ck, name, a, status)
    type(ckpt_handle), intent(inout) :: ck
    character(*), intent(in) :: name
    {ftype}, intent(inout), target :: a{dims(r)}
    integer, intent(out), optional :: status
    type(c_ptr) :: p
{body}    call protect_value(ck, name, p, {dtype}, {".true." if cplx else ".false."}, &
                       {shp}, {contig}, {repl}, status)
  end subroutine {name}
""")
    return "\n".join(out)


def generic(gname, names):
    lines = [f"  interface {gname}"]
    for i in range(0, len(names), 4):
        lines.append("    module procedure " + ", ".join(names[i:i + 4]))
    lines.append(f"  end interface {gname}")
    return "\n".join(lines)


def main():
    with open(os.path.join(HERE, "ckpt_body.f90.in")) as f:
        tmpl = f.read()
    interfaces = "\n".join([
        generic("ckpt_protect_distributed",
                [f"pd_{t[0]}_{r}" for t in TYPES for r in (1, 2, 3)]),
        generic("ckpt_protect_replicated",
                [f"rep_{t[0]}_{r}" for t in TYPES for r in (0, 1, 2, 3)]),
        generic("ckpt_protect_per_rank",
                [f"pr_{t[0]}_{r}" for t in TYPES for r in (0, 1, 2, 3)]),
    ])
    specifics = "\n".join([
        "  ! --- generated: ckpt_protect_distributed, one per type and rank ---\n",
        gen_distributed(),
        "  ! --- generated: ckpt_protect_replicated ---\n",
        gen_values("rep"),
        "  ! --- generated: ckpt_protect_per_rank ---\n",
        gen_values("pr"),
    ])
    text = tmpl.replace("@GENERIC_INTERFACES@", interfaces).replace("@SPECIFICS@", specifics)
    out = os.path.join(HERE, "ckpt.f90")
    if "--check" in sys.argv[1:]:
        with open(out) as f:
            if f.read() != text:
                print("ckpt.f90 is out of date: run /usr/bin/python3 libckpt/fortran/gen_ckpt_f90.py")
                return 1
        print("ckpt.f90 is up to date")
        return 0
    with open(out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
