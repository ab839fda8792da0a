"""The parameter protocol of scikit-learn estimators, without depending on scikit-learn."""

from __future__ import annotations

import inspect
from typing import Any, Self


class ParamsMixin:
    """``get_params`` / ``set_params`` read off ``__init__``'s keyword arguments, so ``clone`` works."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as given to ``__init__``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set hyperparameters by name; unknown names are a ``ValueError`` listing the valid ones."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}; valid: {valid}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = [
            f"{k}={v!r}" for k, v in self.get_params().items() if k in defaults and defaults[k] is not v
            and not (isinstance(v, (int, float, str, bool)) and v == defaults[k])
        ]
        return f"{type(self).__name__}({', '.join(changed)})"
