"""Server-rendered pages: shared layout, partials, static files and the shell's own views."""
