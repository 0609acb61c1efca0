"""The position of a program in its Checkpointer.loop / Checkpointer.phase structure: the
running loops with their indices and, at each level, what is done in the current
iteration. Saved in the "position" entry of a checkpoint's description and re-entered by
the restarted program (replay)."""

from __future__ import annotations

from ._errors import make_error


class _Frame:
    __slots__ = ("name", "n", "i", "done", "seen", "nonleaf", "phase")

    def __init__(self, name, n, i, done, phase):
        self.name, self.n, self.i, self.phase = name, n, i, phase
        self.done = list(done)     # loops/phases finished in the current iteration
        self.seen = set()          # entered by this process in the current iteration
        self.nonleaf = bool(done)  # the current iteration entered a nested loop or phase

    def next_iteration(self):
        self.i += 1
        self.done, self.seen, self.nonleaf = [], set(), False


class _Position:
    """Where the program is in its cp.loop/cp.phase structure, and the restored position
    that the program re-enters (replay) after a restart."""

    def __init__(self, saved):
        saved = saved if isinstance(saved, dict) else {}
        self.top_done = [str(x) for x in saved.get("done", [])]
        self.top_seen: set[str] = set()
        self.replay = [dict(f) for f in saved.get("stack", [])]
        self.frames: list[_Frame] = []
        self.halted = False

    def doc(self) -> dict:
        stack = [{"name": f.name, "i": f.i, "done": list(f.done)} for f in self.frames]
        stack += self.replay[len(stack):]  # not re-entered yet: still where it was
        return {"done": list(self.top_done), "stack": stack}

    def enter(self, name, n, is_phase):
        parent = self.frames[-1] if self.frames else None
        done = parent.done if parent else self.top_done
        seen = parent.seen if parent else self.top_seen
        where = "/".join(f"{f.name}[{f.i}]" for f in self.frames) or "the top level"
        if name in seen:
            raise make_error("invalid_argument", -1,
                             f"Checkpointer: '{name}' is entered twice in {where}; give each "
                             "loop and phase of one iteration its own name (and use cp.loop, "
                             "not range, for the enclosing loops)")
        seen.add(name)
        if parent is not None:
            parent.nonleaf = True
        if name in done:
            return None   # done when the restored checkpoint was saved
        d = len(self.frames)
        if d < len(self.replay):
            r = self.replay[d]
            if r.get("name") != name:
                raise make_error(
                    "mismatch", -1,
                    f"Checkpointer: the program entered '{name}' in {where}, but the restored "
                    f"checkpoint was saved inside '{r.get('name')}' there; the loops and phases "
                    "must be the same as in the run that saved it")
            frame = _Frame(name, n, int(r.get("i", 0)), [str(x) for x in r.get("done", [])],
                           is_phase)
            if d < len(self.replay) - 1:
                frame.nonleaf = True
            else:
                self.replay = []   # back where the checkpoint was saved
        else:
            frame = _Frame(name, n, 0, [], is_phase)
        self.frames.append(frame)
        return frame

    def leave(self, frame):
        if not self.frames or self.frames[-1] is not frame:
            return
        self.frames.pop()
        parent = self.frames[-1] if self.frames else None
        (parent.done if parent else self.top_done).append(frame.name)
        if len(self.frames) < len(self.replay):
            self.replay = []
