"""The labelling page in a real headless Chromium: keyboard labelling, undo, a server restart,
and two labellers with one disagreement; the manifest and kappa must be exactly right."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from imgcls.labelling import label
from imgcls.labelling.app import create_label_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
CLASSES = ["circle", "square", "triangle"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium "
                                "(`make test` installs it with tools/ensure-debian-package.sh)")


class Server:
    """A labelling session served by uvicorn in a thread; ``restart`` is a kill and a new start."""

    def __init__(self, photos: Path, out: Path, **options) -> None:
        self.photos, self.out, self.options = photos, out, options
        self.start()

    def start(self) -> None:
        import uvicorn

        self.session = label(self.photos, ",".join(CLASSES), self.out, serve=False, backbone="features",
                             progress=False, refit_every=3, **self.options)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(create_label_app(self.session), host="127.0.0.1",
                                                    port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.session.wait()
        self.session.store.close()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser, url: str, labeller: str):
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.goto(f"{url}/?labeller={labeller}")
    _wait_for_image(page, "")
    return page


def _wait_for_image(page, previous: str) -> str:
    from playwright.sync_api import expect

    expect(page.locator("#path")).not_to_have_text(previous or "^$", timeout=15_000)
    expect(page.locator("#path")).not_to_have_text("", timeout=15_000)
    return page.locator("#path").inner_text()


def _press(page, key: str) -> str:
    shown = page.locator("#path").inner_text()
    page.keyboard.press(key)
    return _wait_for_image(page, shown)


def _label(page, truth: dict[str, str], given: dict[str, str]) -> list[str]:
    """Press the key of the shown image's true class; its near-duplicates shown with it get it
    too. Returns the images answered."""
    shown = page.locator("#path").inner_text()
    group = page.locator("#group img").evaluate_all("images => images.map(i => i.title)")
    _press(page, str(CLASSES.index(truth[shown]) + 1))
    given.update({name: truth[shown] for name in [shown, *group]})
    return [shown, *group]


def _manifest(out: Path) -> dict[str, str]:
    table = pd.read_csv(out, keep_default_na=False)
    return {Path(p).name: label for p, label in zip(table["path"], table["label"], strict=True)}


def test_keyboard_labels_undo_and_a_restart_give_exactly_the_right_manifest(browser, photos, photo_truth,
                                                                            tmp_path):
    from playwright.sync_api import expect

    hostile = "<img src=x onerror=alert(1)>.png"  # a file name is data, never markup
    (photos / hostile).write_text("not an image either")
    out = tmp_path / "labels.csv"
    server = Server(photos, out)
    try:
        page = _open(browser, server.url, "ann")
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        given = {}
        for _ in range(3):
            last = _label(page, photo_truth, given)
        page.keyboard.press("u")  # undo the third
        expect(page.locator("#message")).to_contain_text("Undone", timeout=10_000)
        assert page.locator("#path").inner_text() == last[0]
        for name in last:  # the whole answer is taken back, near-duplicates too
            del given[name]
        assert _manifest(out) == given
        assert page.errors == []
        server.restart()  # the server is killed and started again: nothing lost, nothing repeated
        page = _open(browser, server.url, "ann")
        assert page.locator("#path").inner_text() not in given
        while server.session.wait() or server.session.state()["estimate"] is None:  # 3 labels per class
            _label(page, photo_truth, given)
        assert _manifest(out) == given
        page.reload()
        expect(page.locator("#estimate")).to_contain_text("Estimated accuracy", timeout=15_000)
        expect(page.locator("#skipped")).to_contain_text("broken.png")
        expect(page.locator("#skipped")).to_contain_text(hostile)  # shown as text
        assert page.locator("#skipped img").count() == 0 and dialogs == []
        shot = Path(os.environ.get("IMGCLS_LABEL_SCREENSHOT") or tmp_path / "label-page.png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 1000 and page.errors == []
    finally:
        server.stop()


def test_two_labellers_at_once_with_one_disagreement(browser, photos, photo_truth, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    (photos / "copy_of_img000.png").unlink()  # no near-duplicate groups: one vote per key press
    out = tmp_path / "labels.csv"
    server = Server(photos, out, overlap=2)
    try:
        ann, bob = _open(browser, server.url, "ann"), _open(browser, server.url, "bob")
        votes = {"ann": {}, "bob": {}}
        for _ in range(4):
            shown = ann.locator("#path").inner_text()
            _press(ann, str(CLASSES.index(photo_truth[shown]) + 1))
            votes["ann"][shown] = photo_truth[shown]
        bob.reload()
        for k in range(4):  # bob is shown ann's images (overlap 2) and disagrees on the first
            shown = _wait_for_image(bob, "")
            assert shown in votes["ann"]
            answer = photo_truth[shown] if k else next(c for c in CLASSES if c != photo_truth[shown])
            _press(bob, str(CLASSES.index(answer) + 1))
            votes["bob"][shown] = answer
        state = server.session.state()
        pair = state["agreement"]["pairs"][0]
        paths = sorted(votes["ann"])
        expected = cohen_kappa_score([votes["ann"][p] for p in paths], [votes["bob"][p] for p in paths])
        assert pair["images"] == 4 and pair["agreement"] == 0.75
        assert pair["kappa"] == pytest.approx(expected)
        table = pd.read_csv(out, keep_default_na=False)
        table["name"] = [Path(p).name for p in table["path"]]
        assert sorted(table["name"]) == sorted(p for p in paths if votes["ann"][p] == votes["bob"][p])
        row = table.iloc[0]
        assert row["vote_ann"] == votes["ann"][row["name"]] == row["vote_bob"] == row["label"]
        assert ann.errors == [] and bob.errors == []
    finally:
        server.stop()


def test_multi_label_keys_switch_labels_and_enter_saves_the_set(browser, photos, tmp_path):
    from playwright.sync_api import expect

    (photos / "copy_of_img000.png").unlink()  # no near-duplicate groups: one image per answer
    out = tmp_path / "labels.csv"
    server = Server(photos, out, task="multilabel")
    try:
        page = _open(browser, server.url, "ann")
        first = page.locator("#path").inner_text()
        page.keyboard.press("1")
        page.keyboard.press("3")
        page.keyboard.press("1")  # off again
        page.keyboard.press("2")
        expect(page.locator("#buttons button.on")).to_have_count(2)
        second = _press(page, "Enter")
        _press(page, "Enter")  # no label at all is an answer too
        assert _manifest(out) == {first: "square|triangle", second: ""}
        expect(page.locator("#buttons button.on")).to_have_count(0)
        assert page.errors == []
    finally:
        server.stop()
