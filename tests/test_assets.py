"""Downloads into the shared data cache: concurrent fetchers take turns and the file is fetched once."""

from __future__ import annotations

import io
import threading
import time
import urllib.request

from fptlab import assets


def test_concurrent_downloads_fetch_once(tmp_path, monkeypatch):
    monkeypatch.delenv("FPTLAB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def slow_urlopen(url, timeout=None):
        calls.append(url)
        time.sleep(0.3)  # long enough for every thread to be waiting on the lock
        return io.BytesIO(b"payload")

    monkeypatch.setattr(urllib.request, "urlopen", slow_urlopen)
    dest = tmp_path / "data" / "archive.tar.gz"
    threads = [threading.Thread(target=assets.download, args=("http://example.invalid/a", dest), kwargs={"what": "x", "how_to_get": ""})
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["http://example.invalid/a"] and dest.read_bytes() == b"payload"
    assert not list(dest.parent.glob("*.part"))
