"""Pure renderers: a result object in, a Rich renderable or plain lines out (plan, stats, eval, config, dashboard)."""
