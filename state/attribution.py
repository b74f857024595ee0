"""Attribution state transition (DESIGN section 3): datanets, contributions, models, inference.

Handlers are registered in HANDLERS (body type -> handler) and dispatched by state.transition.
"""

from __future__ import annotations

from typing import Any

HANDLERS: dict[type[Any], Any] = {}
