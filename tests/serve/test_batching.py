"""Micro-batching: concurrent requests share model calls, and the answers do not change."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import numpy as np
import pytest

from imgcls.serve.batching import MicroBatcher


class Recorder:
    """A fake predict_proba that notes each batch size and returns row sums (so rows are traceable)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay = delay

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.sizes.append(len(batch))
        time.sleep(self.delay)
        return batch.reshape(len(batch), -1).sum(axis=1, keepdims=True).astype(np.float32)


def run_requests(batcher: MicroBatcher, sizes: list[int]) -> list[np.ndarray]:
    async def main():
        stacks = [np.full((n, 2), i, np.float32) for i, n in enumerate(sizes)]
        results = await asyncio.gather(*(batcher.predict(s) for s in stacks))
        batcher.close()
        return results

    return asyncio.run(main())


def test_concurrent_requests_share_a_batch_and_get_their_own_rows():
    predict = Recorder()
    results = run_requests(MicroBatcher(predict, max_batch=32, max_wait_ms=50), [1, 2, 3, 1])
    assert predict.sizes == [7]
    for i, (n, rows) in enumerate(zip([1, 2, 3, 1], results, strict=True)):
        assert rows.shape == (n, 1) and np.all(rows == 2 * i)


def test_batches_respect_max_batch_and_big_requests_are_split():
    predict = Recorder()
    run_requests(MicroBatcher(predict, max_batch=4, max_wait_ms=50), [3, 3, 1])
    assert sorted(predict.sizes) == [3, 4] and max(predict.sizes) <= 4
    predict = Recorder()
    [rows] = run_requests(MicroBatcher(predict, max_batch=4, max_wait_ms=5), [10])
    assert predict.sizes == [4, 4, 2] and rows.shape == (10, 1)


def test_zero_wait_runs_each_request_alone():
    predict = Recorder(delay=0.01)
    run_requests(MicroBatcher(predict, max_batch=32, max_wait_ms=0), [1, 1, 2])
    assert predict.sizes == [1, 1, 2]


def test_a_model_error_reaches_the_requests_and_the_worker_goes_on():
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return np.zeros((len(batch), 1), np.float32)

    async def main():
        batcher = MicroBatcher(flaky, max_wait_ms=0)
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.predict(np.zeros((1, 2)))
        return await batcher.predict(np.zeros((2, 2)))

    assert asyncio.run(main()).shape == (2, 1)


def test_a_closed_batcher_still_answers_late_requests():
    predict = Recorder()

    async def main():
        batcher = MicroBatcher(predict, max_wait_ms=5)
        await batcher.predict(np.zeros((1, 2)))
        batcher.close()
        return await batcher.predict(np.ones((2, 2)))

    assert asyncio.run(main()).tolist() == [[2.0], [2.0]]


def batch_stats(metrics: str) -> tuple[float, float]:
    count = float(re.search(r'imgcls_batch_size_count\{model="shapes"\} (\S+)', metrics).group(1))
    images = float(re.search(r'imgcls_images_predicted_total\{model="shapes"\} (\S+)', metrics).group(1))
    return count, images


def test_concurrent_http_requests_are_batched_with_unchanged_results(make_client, png_files):
    client = make_client(max_wait_ms=100, max_batch=32)
    files = [[("files", (p.name, p.read_bytes(), "image/png"))] for p in png_files]
    alone = [client.post("/v1/predict", files=f).json()["results"][0] for f in files]
    before = batch_stats(client.get("/metrics").text)
    barrier = threading.Barrier(len(files))
    answers: list = [None] * len(files)

    def send(i):
        barrier.wait()
        answers[i] = client.post("/v1/predict", files=files[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.status_code == 200 for a in answers)
    count, images = np.subtract(batch_stats(client.get("/metrics").text), before)
    assert images == len(files) and count < len(files)  # some model call held several requests
    for single, batched in zip(alone, (a.json()["results"][0] for a in answers), strict=True):
        assert [p["label"] for p in single["predictions"]] == [p["label"] for p in batched["predictions"]]
        assert np.allclose([p["probability"] for p in single["predictions"]],
                           [p["probability"] for p in batched["predictions"]], atol=1e-5)


def test_async_clients_are_batched_too(shapes_run, png_files):
    from imgcls.config import ServeConfig
    from imgcls.serve import ModelStore, create_app

    settings = ServeConfig(models=[str(shapes_run)], max_wait_ms=100, api_key=None)
    store = ModelStore.from_config(settings)
    store.load_all()  # a loaded store: no lifespan needed
    app = create_app(settings, store=store)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            posts = [client.post("/v1/predict", files=[("files", (p.name, p.read_bytes()))])
                     for p in png_files]
            answers = await asyncio.gather(*posts)
            return answers, (await client.get("/metrics")).text

    answers, metrics = asyncio.run(main())
    assert [a.status_code for a in answers] == [200] * len(png_files)
    count, images = batch_stats(metrics)
    assert images == len(png_files) and count < images
