"""The webhooks page (admins): endpoints, a form to add one, recent deliveries with their attempts."""

from __future__ import annotations

from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from phoneops.core.deps import DbSession, page_admin
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import render
from phoneops.webhooks import service

router = APIRouter(include_in_schema=False)


def _page(request: Request, session: Session, principal: Principal, *, error: str | None = None,
          form: dict[str, object] | None = None, status_code: int = 200) -> Response:
    deliveries = service.list_deliveries(session, limit=50)
    endpoints = service.list_endpoints(session)
    response = render(
        request, "webhooks/index.html", principal, endpoints=endpoints, events=service.EVENTS,
        urls={e.id: urlparse(e.url).netloc for e in endpoints},
        deliveries=[(d, service.attempts_of(session, d.id)) for d in deliveries], error=error,
        form=form or {"url": "", "events": ["job.finished", "job.failed"]},
    )
    response.status_code = status_code
    return response


@router.get("/admin/webhooks", response_class=HTMLResponse)
def page(request: Request, session: Session = DbSession, principal: Principal = Depends(page_admin)) -> Response:
    return _page(request, session, principal)


@router.post("/admin/webhooks", response_class=HTMLResponse)
def add(
    request: Request,
    url: str = Form(""),
    secret: str = Form(""),
    events: list[str] = Form(default_factory=list),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    try:
        endpoint = service.register(session, principal, url, secret, events)
    except ValidationFailed as exc:
        return _page(request, session, principal, error=exc.message, form={"url": url, "events": events},
                     status_code=422)
    return redirect_with("/admin/webhooks", f"Webhook {endpoint.url} registered.")


@router.post("/admin/webhooks/{endpoint_id}/toggle")
def toggle(endpoint_id: int, session: Session = DbSession, principal: Principal = Depends(page_admin)) -> Response:
    endpoint = service.get_endpoint(session, endpoint_id)
    service.set_active(session, principal, endpoint_id, not endpoint.active)
    return redirect_with("/admin/webhooks", f"Webhook {endpoint.url} {'enabled' if endpoint.active else 'disabled'}.")


@router.get("/admin/webhooks/{endpoint_id}/remove", response_class=HTMLResponse)
def confirm_remove(request: Request, endpoint_id: int, session: Session = DbSession,
                   principal: Principal = Depends(page_admin)) -> Response:
    """The confirm step: what goes (the endpoint and its delivery history) before anything is deleted."""
    endpoint = service.get_endpoint(session, endpoint_id)
    return render(request, "webhooks/remove.html", principal, endpoint=endpoint,
                  deliveries=service.delivery_count(session, endpoint_id))


@router.post("/admin/webhooks/{endpoint_id}/remove")
def remove(endpoint_id: int, confirm: str = Form(""), session: Session = DbSession,
           principal: Principal = Depends(page_admin)) -> Response:
    if confirm != "yes":  # only the confirm page's button sends it
        return redirect_with(f"/admin/webhooks/{endpoint_id}/remove", "Confirm the removal with the button below.")
    url = service.get_endpoint(session, endpoint_id).url
    service.remove(session, principal, endpoint_id)
    return redirect_with("/admin/webhooks", f"Webhook {url} removed with its delivery history.")


@router.post("/admin/webhooks/{endpoint_id}/test")
def send_test(endpoint_id: int, session: Session = DbSession, principal: Principal = Depends(page_admin)) -> Response:
    service.send_test(session, principal, endpoint_id)
    return redirect_with("/admin/webhooks", "Test event queued: its delivery shows below.")


@router.post("/admin/webhooks/deliveries/{delivery_id}/resend")
def resend(delivery_id: int, session: Session = DbSession, principal: Principal = Depends(page_admin)) -> Response:
    service.resend(session, principal, delivery_id)
    return redirect_with("/admin/webhooks", f"Delivery {delivery_id} sent again as a new delivery.")
