import numpy as np

from imgcls.checks.duplicates import ContentMatch, exact_groups, near_groups, near_pairs


def test_near_pairs_equal_brute_force():
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(0, 2**63, size=400)]
    for k in range(0, 40, 4):  # plant close pairs at 0..5 differing bits
        values[k + 1] = values[k] ^ sum(1 << b for b in rng.choice(64, size=k % 6, replace=False))
    hashes = [format(v, "016x") for v in values]
    brute = sorted((i, j) for i in range(400) for j in range(i + 1, 400)
                   if bin(values[i] ^ values[j]).count("1") <= 4)
    assert near_pairs(hashes, 4) == brute
    assert near_pairs(hashes, 0) == [(i, j) for i, j in brute if values[i] == values[j]]


def test_exact_groups_skip_unreadable():
    assert exact_groups(["a", None, "a", "b", None]) == [[0, 2]]


def _cell(rng, defects):
    img = np.full((64, 64), 180.0)
    img[::16, :] = 40  # structure every image shares (like busbars)
    for y, x in defects:
        img[y:y + 4, x:x + 4] = 60
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def test_content_match_sees_past_shared_structure():
    rng = np.random.default_rng(1)
    spots = [[(int(a), int(b)) for a, b in rng.integers(2, 58, size=(6, 2))] for _ in range(10)]
    thumbs = np.stack([_cell(rng, s) for s in spots] + [_cell(rng, spots[0])])  # 10 = copy of 0
    grey = [[0.6, 0.6, 0.6]] * len(thumbs)
    match = ContentMatch(thumbs, grey, 0.9)
    assert match(0, 10)
    assert not match(0, 1)
    tinted = grey[:-1] + [[0.9, 0.3, 0.3]]
    assert not ContentMatch(thumbs, tinted, 0.9)(0, 10)


def test_near_groups_leave_out_pure_exact_groups():
    hashes = ["0" * 16, "0" * 16, "f" * 16]
    assert near_groups(hashes, 2, exact=[[0, 1]]) == []
    assert near_groups(hashes, 2, exact=[]) == [[0, 1]]
