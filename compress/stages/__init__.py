"""One module per stage. Each has NAME, DEPENDS (stages it reads), CONFIG (config keys it
reads) and ``run(cfg, ctx) -> metrics``; it writes only into ``ctx.out``."""
