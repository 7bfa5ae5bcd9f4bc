"""``Documented``: one convention as a framework's documentation states it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Documented:
    """A convention as the framework documents it: the value (reference vocabulary), where it
    is written, how a user compensates for it when porting, and a short paraphrase of what
    the page states (or why the adapter's translation gives that value). ``value`` and
    ``link`` are empty for a convention the documentation does not settle."""

    value: str
    link: str
    fix: str = ""
    says: str = ""

    @classmethod
    def silent(cls, what: str, looked_at: str, fix: str = "") -> Documented:
        """An entry for a convention the documentation does not settle: ``what`` it does not
        say (``"whether ..."``) and ``looked_at``, the pages that were read."""
        return cls(value="", link="", fix=fix,
                   says=f"the documentation does not say {what}: {looked_at}")

    @property
    def is_silent(self) -> bool:
        return not self.value

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "link": self.link, "fix": self.fix, "says": self.says}
