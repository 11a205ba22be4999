"""``python -m bot`` is the ``troly`` command."""

import gc

# Start-up builds a few hundred thousand long-lived objects (aiogram alone defines some 600
# pydantic models); collecting the youngest generation every 700 allocations meanwhile
# costs a tenth of `troly run`'s start-up and frees nothing. `freeze_startup_heap` (or the
# end of a short command) puts the collector back to its defaults.
gc.set_threshold(100_000, 50, 100)

from bot.cli import main  # noqa: E402

main()
