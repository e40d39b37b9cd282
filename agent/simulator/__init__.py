"""A reference network element serving Element API v1 (``provsync simulate``)."""
