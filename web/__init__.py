"""The web console for party offices (issue 13): sign-in by one-time link, the progress
overview. An adapter like ``bot/channels``: it uses storage and the use cases in
``handlers``; nothing in ``handlers``, ``knowledge`` or ``scheduler`` imports it."""
