"""Server-rendered pages: shared layout, partials, static files and the shell's own views.

Modules:
- charts.py: Small server-side SVG charts (no JavaScript, no third-party assets)
- flash.py: Flash messages: one short note carried across a redirect (post → redirect → get) in a signed cookie
- notices.py: The navigation's job notice: a job the user started ended (succeeded, failed or was cancelled)...
- render.py: Template rendering shared by every domain's views.py
- views.py: Pages of the shell: login, dashboard, jobs, users, API tokens, audit log
"""
