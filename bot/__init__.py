"""Trợ lý Kết luận: the composition root and the outside world (settings, storage, channels)."""
