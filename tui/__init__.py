"""What a person sees: the CLI (``cli``) and the Textual dashboard (``app``)."""
