"""Votes kept append-only in SQLite; agreement between labellers; votes resolved into labels."""

import numpy as np
import pandas as pd
import pytest

from imgcls.core.errors import ConfigError
from imgcls.labelling.agreement import agreement, fleiss_kappa, resolve
from imgcls.labelling.store import LabelStore


def test_votes_survive_a_restart_and_undo_restores_the_previous_answer(tmp_path):
    store = LabelStore(tmp_path / "votes.db")
    store.add("a.png", "ann", "cat")
    store.add("a.png", "ann", "dog")  # changed her mind
    store.add("b.png", "ann", "skip", "skip")
    store.close()
    again = LabelStore(tmp_path / "votes.db")
    assert again.undo("ann") == "b.png" and again.undo("ann") == "a.png"
    answers = again.answers()
    assert answers[["path", "label"]].values.tolist() == [["a.png", "cat"]]
    with pytest.raises(ConfigError, match="'kind'"):
        again.add("c.png", "ann", "x", "maybe")
    (tmp_path / "bad.db").write_text("not a database at all" * 100)
    with pytest.raises(ConfigError, match="cannot be used as a label store"):
        LabelStore(tmp_path / "bad.db")


def _answers(rows):
    return pd.DataFrame(rows, columns=["path", "labeller", "label", "kind"])


def test_rules_resolve_disagreements_and_keep_every_vote():
    answers = _answers([("a", "x", "cat", "label"), ("a", "y", "cat", "label"), ("a", "z", "dog", "label"),
                        ("b", "x", "cat", "label"), ("b", "y", "dog", "label"),
                        ("c", "x", "dog", "label"), ("c", "y", "unsure", "unsure")])
    majority = resolve(answers, "majority", keep_unresolved=True).set_index("path")
    assert majority.loc["a", "label"] == "cat" and not majority.loc["a", "agreed"]
    assert majority.loc["b", "label"] == "" and majority.loc["c", "label"] == "dog"
    assert majority.loc["a", "vote_z"] == "dog" and majority.loc["c", "vote_y"] == "unsure"
    reviewer = resolve(answers, "reviewer:y").set_index("path")
    assert reviewer.loc["b", "label"] == "dog" and reviewer.loc["a", "label"] == "cat"
    assert list(resolve(answers, "drop")["path"]) == ["c"]
    with pytest.raises(ConfigError, match="'rule'"):
        resolve(answers, "loudest")


def test_kappa_matches_scikit_learn_for_two_labellers_and_fleiss_for_perfect_agreement():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    truth = rng.choice(["a", "b", "c"], 40)
    other = np.where(rng.random(40) < 0.3, rng.choice(["a", "b", "c"], 40), truth)
    rows = [(f"i{k}", "x", t, "label") for k, t in enumerate(truth)]
    rows += [(f"i{k}", "y", t, "label") for k, t in enumerate(other)]
    found = agreement(_answers(rows))
    assert found["pairs"][0]["kappa"] == pytest.approx(cohen_kappa_score(truth, other))
    same = _answers([(f"i{k}", w, t, "label") for k, t in enumerate(truth) for w in "xyz"])
    assert fleiss_kappa(same)["kappa"] == pytest.approx(1.0) and fleiss_kappa(same)["unanimous"] == 1.0


def test_check_flags_images_whose_labellers_disagreed(tmp_path, shapes_small):
    from PIL import Image

    import imgcls

    rows = []
    for i in range(12):
        Image.fromarray(shapes_small.read(i * 3)).save(tmp_path / f"{i}.png")
        label = str(shapes_small.labels[i * 3])
        other = ("triangle" if label != "triangle" else "circle") if i == 4 else label  # one disagreement
        rows.append({"path": f"{i}.png", "label": label, "votes": 2, "agreed": other == label,
                     "vote_ann": label, "vote_bob": other if i != 7 else "unsure"})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    report = imgcls.check(tmp_path / "labels.csv", out=tmp_path / "check", overrides=["check.labels=false"],
                          progress=False)
    found = [f for f in report.issues if f.check == "labeller_disagreement"]
    assert [f.path for f in found] == ["4.png"]
    assert "ann=square" in found[0].detail and "bob=triangle" in found[0].detail
    assert not [f for f in report.issues if f.check == "group_representation" and "vote_" in f.detail]


def _two_servers_one_store(store, photos, tmp_path):
    """Two labelling servers (on two machines, say) writing one store: each sees the other's votes."""
    from imgcls.labelling import label

    def start(k):
        return label(photos, "circle,square,triangle", tmp_path / f"machine{k}" / "labels.csv", store=store,
                     project="shapes", overlap=2, serve=False, backbone="features", progress=False)

    first, second = start(0), start(1)
    ann = {}
    for name in ("circle", "square"):
        item = first.next("ann")
        first.answer("ann", item["id"], name)
        ann[item["path"]] = name
    for _ in ann:
        offered = second.next("bob")
        assert offered["path"] in ann  # ann's images, waiting for a second labeller
        second.answer("bob", offered["id"], "square")
    pair = second.state()["agreement"]["pairs"][0]
    assert pair["labellers"] == ["ann", "bob"] and pair["images"] == 2 and pair["agreement"] == 0.5
    assert first.store.undo("bob") == offered["path"]  # one labeller's undo, from either server
    assert first.store.undo("bob") == next(p for p in ann if p != offered["path"])
    assert set(first.answered()["labeller"]) == {"ann"}
    for session in (first, second):
        session.wait()
        session.store.close()


def test_two_servers_share_a_sqlite_store(photos, tmp_path):
    _two_servers_one_store(tmp_path / "team.db", photos, tmp_path)


def test_two_servers_share_a_postgresql_store(photos, tmp_path, postgres_url):
    _two_servers_one_store(postgres_url, photos, tmp_path)
    other = LabelStore(postgres_url, project="another")  # projects do not see each other's votes
    assert other.count() == 0 and len(LabelStore(postgres_url, project="shapes").answers()) == 2


def test_a_store_url_without_its_driver_or_server_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be used as a label store"):
        LabelStore("postgresql+psycopg://nobody@127.0.0.1:1/none")


def test_label_sets_resolve_label_by_label_and_kappa_is_per_label():
    answers = _answers([("a", "x", "cat|dog", "label"), ("a", "y", "cat", "label"),
                        ("a", "z", "cat|dog", "label"),
                        ("b", "x", "cat", "label"), ("b", "y", "dog", "label"),
                        ("c", "x", "", "label"), ("c", "y", "", "label")])
    table = resolve(answers, "majority", keep_unresolved=True, multilabel=True).set_index("path")
    assert table.loc["a", "label"] == "cat|dog" and table.loc["a", "resolved"]  # dog: 2 of 3
    assert not table.loc["b", "resolved"]  # cat and dog each held by half
    assert table.loc["c", "label"] == "" and table.loc["c", "resolved"]  # no label is an answer
    assert list(resolve(answers, "drop", multilabel=True)["path"]) == ["c"]
    found = agreement(answers, classes=["cat", "dog"])
    xy = next(p for p in found["pairs"] if p["labellers"] == ["x", "y"])
    assert xy["images"] == 3 and xy["exact"] == pytest.approx(1 / 3)
    assert xy["agreement"] == pytest.approx(3 / 6)  # yes/no per image and label: 3 of 6 agree


def test_check_flags_label_sets_that_differ_none_included():
    from imgcls.checks.rules import vote_findings

    table = pd.DataFrame({"path": ["a", "b", "c"], "label": ["cat", "", "cat|dog"],
                          "vote_x": ["cat", "", "dog|cat"], "vote_y": ["", "", "cat|dog"]})
    assert [f.path for f in vote_findings(table, multilabel=True)] == ["a"]  # c: the same set
    assert [f.path for f in vote_findings(table)] == ["c"]  # one class each: '' is no vote, c's differ
