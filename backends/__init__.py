"""labdeck's engine: project model, run store, snapshots, supervisor and one module per backend.

Nothing in this package imports textual; the TUI layer (``tui``) imports this one, never the
reverse.
"""
