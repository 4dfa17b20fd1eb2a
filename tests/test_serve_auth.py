"""The optional API key of the ingress (the HTTP paths themselves are covered in test_serve.py)."""

import pytest
from fastapi import HTTPException
from starlette.datastructures import Headers

from tdmm_ray.serve.app import check_api_key


def test_api_key_required_when_configured():
    with pytest.raises(HTTPException) as e:
        check_api_key("s3cret", Headers({}))
    assert e.value.status_code == 401 and "API key" in e.value.detail
    with pytest.raises(HTTPException):
        check_api_key("s3cret", Headers({"X-API-Key": "wrong"}))
    check_api_key("s3cret", Headers({"X-API-Key": "s3cret"}))
    check_api_key("s3cret", Headers({"Authorization": "Bearer s3cret"}))


def test_no_key_configured_lets_requests_through():
    check_api_key(None, Headers({}))
