"""Flash messages: one short note carried across a redirect (post → redirect → get) in a signed cookie.

`flash(response, text)` sets it on the redirect; `render` reads it on the next page, shows it above the
content and clears it. Signed with SESSION_SECRET, so a forged cookie shows nothing.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from phoneops.settings import get_settings

FLASH_COOKIE = "phoneops_flash"
MAX_AGE_SECONDS = 120
MAX_TEXT = 500

Kind = Literal["ok", "error", "warn"]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().session_secret.get_secret_value(), salt="phoneops.flash")


def flash(response: Response, text: str, kind: Kind = "ok", *, link: tuple[str, str] | None = None) -> Response:
    """Attach a message shown once on the next page this browser renders; `link` = (label, same-site path),
    e.g. the job an action started."""
    data = {"text": text[:MAX_TEXT], "kind": kind}
    if link is not None and link[1].startswith("/") and not link[1].startswith("//"):
        data["link"], data["href"] = link[0][:100], link[1][:300]
    value = _serializer().dumps(data)
    response.set_cookie(FLASH_COOKIE, value, max_age=MAX_AGE_SECONDS, path="/", httponly=True, samesite="lax",
                        secure=get_settings().secure_cookies)
    return response


def has_flash(response: Response) -> bool:
    return any(
        name.lower() == b"set-cookie" and value.startswith(FLASH_COOKIE.encode() + b"=")
        for name, value in response.raw_headers
    )


def read_flash(request: Request) -> dict[str, str] | None:
    """The message waiting for this request, if any (the caller clears the cookie)."""
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return None
    kind = data.get("kind") if data.get("kind") in ("ok", "error", "warn") else "ok"
    out = {"text": data["text"], "kind": str(kind)}
    if isinstance(data.get("href"), str) and isinstance(data.get("link"), str):
        out["href"], out["link"] = data["href"], data["link"]
    return out


def clear_flash(response: Response) -> None:
    response.delete_cookie(FLASH_COOKIE, path="/")


def redirect_with(location: str, text: str, kind: Kind = "ok", *, link: tuple[str, str] | None = None) -> Response:
    """Post → redirect → get with a message: what every form answers after its action (docs/DEVELOPING.md,
    "Pages and forms")."""
    from fastapi.responses import RedirectResponse

    return flash(RedirectResponse(location, status_code=303), text, kind, link=link)
