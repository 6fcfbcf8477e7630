"""Test helpers shipped with glacierxr: local servers that stand in for cloud storage.

:mod:`glacierxr.testing.http` serves files over HTTP with byte ranges (as S3 or Azure Blob do
for cloud-optimised GeoTIFFs), optionally injecting faults, and serves a synthetic region's
STAC catalogue with asset hrefs pointing at that server.
"""
