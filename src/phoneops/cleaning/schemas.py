"""API shapes of list cleaning."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    file_id: int
    kind: str
    job_id: str | None
    status: str
    options: dict[str, Any]
    stats: dict[str, Any]
    error: str | None
    output_file_id: str | None
    rejected_file_id: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    purpose: str
    original_name: str
    status: str
    table_kind: str
    encoding: str
    delimiter: str
    has_header: bool
    columns: list[str]
    phone_column: int | None
    region: str
    size: int
    active_run_id: int | None
    last_run_id: int | None
    error: str | None
    created_by: str
    created_at: datetime


class FileDetail(FileOut):
    sample: list[list[str]]
    runs: list[RunOut] = Field(default_factory=list)


class CleanIn(BaseModel):
    phone_column: str | int | None = Field(default=None, description="header name, 1-based position or column_N")
    region: str | None = Field(default=None, max_length=8, description="default region (ISO 3166), e.g. GB")
    filters: list[str] | None = Field(default=None, description="filters besides the blacklist: monitor, used, ...")
    add_to_used: bool = Field(default=False, description="add the kept numbers to the main database")
    line_type: bool = Field(default=False, description="add a line_type column (mobile, fixed_line, voip, ...)")
    sms_only: bool = Field(default=False, description="keep only numbers that can receive SMS (see sms_types)")
    sms_types: list[str] | None = Field(default=None, description="line types kept by sms_only (default: mobile, "
                                        "fixed_line_or_mobile)")


class EncryptIn(BaseModel):
    phone_column: str | int | None = None
    region: str | None = Field(default=None, max_length=8)


class FilterOut(BaseModel):
    name: str
    label: str
    outcome: str
    required: bool
    default: bool
