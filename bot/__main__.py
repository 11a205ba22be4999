"""``python -m bot`` is the ``troly`` command."""

from bot.cli import main

main()
