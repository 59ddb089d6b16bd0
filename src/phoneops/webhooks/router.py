"""Webhooks API (admin only): endpoints, deliveries with their attempts, test sends and resends."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session

from phoneops.core.deps import DbSession, admin
from phoneops.core.security import Principal
from phoneops.webhooks import service
from phoneops.webhooks.models import WebhookDelivery
from phoneops.webhooks.schemas import AttemptOut, DeliveryDetail, DeliveryOut, EndpointIn, EndpointOut

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
MAX_ID = 2**31 - 1


def _detail(session: Session, delivery: WebhookDelivery) -> DeliveryDetail:
    attempts = [AttemptOut.model_validate(a) for a in service.attempts_of(session, delivery.id)]
    return DeliveryDetail.model_validate({**DeliveryOut.model_validate(delivery).model_dump(), "attempt_log": attempts})


@router.get("", response_model=list[EndpointOut])
def list_endpoints(session: Session = DbSession, _: Principal = Depends(admin)) -> list[EndpointOut]:
    return [EndpointOut.model_validate(e) for e in service.list_endpoints(session)]


@router.post("", response_model=EndpointOut, status_code=201)
def register(body: EndpointIn, session: Session = DbSession, actor: Principal = Depends(admin)) -> EndpointOut:
    return EndpointOut.model_validate(service.register(session, actor, body.url, body.secret, body.events))


@router.post("/{endpoint_id}/disable", response_model=EndpointOut)
def disable(endpoint_id: int = Path(ge=1, le=MAX_ID),
    session: Session = DbSession, actor: Principal = Depends(admin)) -> EndpointOut:
    return EndpointOut.model_validate(service.set_active(session, actor, endpoint_id, False))


@router.post("/{endpoint_id}/enable", response_model=EndpointOut)
def enable(endpoint_id: int = Path(ge=1, le=MAX_ID),
    session: Session = DbSession, actor: Principal = Depends(admin)) -> EndpointOut:
    return EndpointOut.model_validate(service.set_active(session, actor, endpoint_id, True))


@router.delete("/{endpoint_id}", status_code=204)
def remove(endpoint_id: int = Path(ge=1, le=MAX_ID),
    session: Session = DbSession, actor: Principal = Depends(admin)) -> Response:
    """Delete an endpoint with its delivery history (pending deliveries are never sent); audited."""
    service.remove(session, actor, endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/test", response_model=DeliveryOut, status_code=202)
def send_test(endpoint_id: int = Path(ge=1, le=MAX_ID),
    session: Session = DbSession, actor: Principal = Depends(admin)) -> DeliveryOut:
    return DeliveryOut.model_validate(service.send_test(session, actor, endpoint_id))


@router.get("/deliveries", response_model=list[DeliveryOut])
def deliveries(
    endpoint_id: int | None = Query(default=None, ge=1, le=2**31 - 1),
    limit: int = Query(default=100, ge=1, le=1000),
    session: Session = DbSession,
    _: Principal = Depends(admin),
) -> list[DeliveryOut]:
    return [DeliveryOut.model_validate(d) for d in service.list_deliveries(session, endpoint_id, limit)]


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetail)
def delivery(delivery_id: int = Path(ge=1, le=MAX_ID),
    session: Session = DbSession, _: Principal = Depends(admin)) -> DeliveryDetail:
    return _detail(session, service.get_delivery(session, delivery_id))


@router.post("/deliveries/{delivery_id}/resend", response_model=DeliveryOut, status_code=202)
def resend(delivery_id: int = Path(ge=1, le=MAX_ID),
    session: Session = DbSession, actor: Principal = Depends(admin)) -> DeliveryOut:
    return DeliveryOut.model_validate(service.resend(session, actor, delivery_id))
