"""Compiled (numba) kernels of the block-max pruned search in :mod:`prosper.retrieval.pruning`.

Imported only when a pruned search runs: importing this module imports numba, and each kernel
compiles on its first call (``cache=True`` keeps the machine code in ``__pycache__`` next to
this file, or in numba's user cache when the package folder is read-only, so later processes
load it in milliseconds). Nothing here runs at import of prosper.

The algorithm is block-max pruning in the style of BMP (Mallia, Suel and Tonellotto, "Faster
Learned Sparse Retrieval with Block-Max Pruning", SIGIR 2024): item rows are cut into blocks
of ``2**shift`` consecutive rows; every query term adds ``w_q[t] * max_{d in block} W_d[t]``
to the upper bound of each block it occurs in; blocks are then scored exactly, from the item
rows (a forward index), in decreasing order of their bound until the bound of every remaining
block is below the k-th best score found so far.

Exactness without an epsilon: a block's bound is accumulated in float32 in query-term order
from products ``fl(w * max)``, each at least an item's ``fl(w * W_d[t])``; float rounding is
monotone, so the float32 bound is never below the float32 score of an item of the block (and
``fl(bound * max 1/||d||)`` never below an ``item_l2`` score). An item's score is summed over
its terms in ascending term id, which for a query with ascending term ids is the order, and
the float32 operations, of the accumulator in
:meth:`prosper.retrieval.index.InvertedIndex.accumulate` (terms absent from the query add an
exact 0), so the scores are bit-identical to it.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def block_upper_bounds(terms, weights, term_offsets, postings_items, postings_weights,
                       dense_rows, dense_q, dense_scale, shift, ub):
    """Add each query term's ``w * block max`` to ``ub`` (zero on entry), in query order.

    A common term (a row in ``dense_q``: its block maxima quantised to uint8, ``fl(q * scale)``
    never below the true maximum) adds ``fl(w * fl(q * scale))`` to every block, a loop the
    compiler vectorises; the other terms take their block maxima from their postings.
    """
    n_blocks = len(ub)
    for qi in range(len(terms)):
        w = weights[qi]
        if not w > 0:
            continue
        t = terms[qi]
        d = dense_rows[t]
        if d >= 0:
            row = dense_q[d]
            scale = dense_scale[d]
            for b in range(n_blocks):
                ub[b] += w * (np.float32(row[b]) * scale)
        else:
            j = term_offsets[t]
            end = term_offsets[t + 1]
            while j < end:
                b = postings_items[j] >> shift
                m = postings_weights[j]
                j += 1
                while j < end and (postings_items[j] >> shift) == b:
                    if postings_weights[j] > m:
                        m = postings_weights[j]
                    j += 1
                ub[b] += w * m


@njit(cache=True, nogil=True)
def _worse(s1, r1, s2, r2):
    # heap order: a lower score, or the same score and a higher row, is worse
    return s1 < s2 or (s1 == s2 and r1 > r2)


@njit(cache=True, nogil=True)
def _sift_down(hs, hr, size, i):
    while True:
        c = 2 * i + 1
        if c >= size:
            return
        if c + 1 < size and _worse(hs[c + 1], hr[c + 1], hs[c], hr[c]):
            c += 1
        if not _worse(hs[c], hr[c], hs[i], hr[i]):
            return
        hs[c], hs[i] = hs[i], hs[c]
        hr[c], hr[i] = hr[i], hr[c]
        i = c


@njit(cache=True, nogil=True)
def _push(hs, hr, size, s, r):
    i = size
    hs[i] = s
    hr[i] = r
    while i > 0:
        p = (i - 1) // 2
        if not _worse(hs[i], hr[i], hs[p], hr[p]):
            break
        hs[p], hs[i] = hs[i], hs[p]
        hr[p], hr[i] = hr[i], hr[p]
        i = p
    return size + 1


@njit(cache=True, nogil=True)
def _score_block(b, shift, n_rows, qw, fwd_offsets, fwd_terms, fwd_weights, item_l2, inv_norms, hs, hr, size, k):
    """Score the rows of block ``b`` from the item rows and offer them to the heap."""
    base = b << shift
    stop = min(base + (1 << shift), n_rows)
    for row in range(base, stop):
        s = np.float32(0.0)
        for p in range(fwd_offsets[row], fwd_offsets[row + 1]):
            s += fwd_weights[p] * qw[fwd_terms[p]]  # terms outside the query add an exact 0
        if not s > 0:
            continue
        if item_l2:
            s = s * inv_norms[row]
            if not s > 0:
                continue
        if size < k:
            size = _push(hs, hr, size, s, row)
        elif s > hs[0] or (s == hs[0] and row < hr[0]):
            hs[0] = s
            hr[0] = row
            _sift_down(hs, hr, size, 0)
    return size


@njit(cache=True, nogil=True)
def _group_maxima(ub, group, out):
    """``out[j]`` = the largest bound of blocks ``[j*group, (j+1)*group)``; returns the largest.

    Bounds are >= 0, so their float32 bit patterns order like the values: an integer maximum,
    which vectorises (a float one does not, for NaN's sake).
    """
    bits = ub.view(np.int32)
    n = len(ub)
    top = np.int32(0)
    for j in range(len(out)):
        m = np.int32(0)
        for b in range(j * group, min((j + 1) * group, n)):
            x = bits[b]
            m = x if x > m else m
        out[j] = m
        top = m if m > top else top
    return top


@njit(cache=True, nogil=True)
def pruned_top_k(terms, weights, qw, fwd_offsets, fwd_terms, fwd_weights, shift, ub, inv_norms,
                 block_inv, item_l2, k, factor, budget, stats):
    """Top-k rows by exact score, scoring only the blocks whose bound can still reach the top k.

    ``ub`` holds the blocks' bounds (from :func:`block_upper_bounds`); ``qw`` is a zero
    float32 array over the vocabulary. Both are zero again on return. With ``item_l2`` the
    bounds are multiplied by the block's largest ``1/||d||`` and scores by the row's.

    A block is scored while ``factor * bound >= theta``, the k-th best score so far (0 until k
    rows have a positive score): ``factor = 1`` is exact, below 1 skips the blocks whose bound
    is under ``theta / factor``. Blocks are taken in bands of bound, ``[g, previous g)``, with
    ``g`` falling geometrically from 0.9 x the highest bound (x 0.7 a band, x 0.25 while fewer
    than k rows have scored): a scan, skipping groups of 64 blocks whose largest bound is below
    ``g``, collects a band, which is sorted and scored highest bound first, until every block
    left is below the threshold. Ties are kept by row ascending.

    ``budget`` >= 0 caps the item postings to score: past it the kernel gives up and returns
    ``ok = False`` (the caller then scores exhaustively). Once an eighth of it is spent, the
    blocks still above the threshold are counted before each band, and the kernel gives up at
    once when scoring them all would cost twice the budget (the count runs high while the
    threshold is still rising, hence the margin).
    ``stats`` receives [bands, blocks scored, postings scored].
    Returns (ok, scores, rows), the heap unsorted.
    """
    n_blocks = len(ub)
    n_rows = len(fwd_offsets) - 1
    group = 64
    for qi in range(len(terms)):
        if weights[qi] > 0:
            qw[terms[qi]] = weights[qi]
    if item_l2:
        for b in range(n_blocks):
            ub[b] = ub[b] * block_inv[b]
    gmax_bits = np.empty((n_blocks + group - 1) // group, np.int32)
    top = np.float64(np.array([_group_maxima(ub, group, gmax_bits)], np.int32).view(np.float32)[0])
    gmax = gmax_bits.view(np.float32)
    k = max(min(k, n_rows), 1)
    hs = np.empty(k, np.float32)
    hr = np.empty(k, np.int64)
    size = 0
    ok = True
    scored = 0
    postings = 0
    bands = 0
    if top > 0:
        band = np.empty(n_blocks, np.int32)
        keys = np.empty(n_blocks, np.float32)
        hi = np.inf  # blocks with a bound >= hi are done
        g = top * 0.9
        while True:
            bands += 1
            theta = np.float64(hs[0]) if size == k else 0.0
            if size == k:
                g = max(g, theta / factor * (1 - 1e-6))  # nothing below theta / factor can qualify
            if g < top * 1e-9:
                g = 0.0  # the last band: every positive bound
            m = 0
            left = 0
            count_left = budget >= 0 and size == k and postings >= budget // 8  # early estimates run high
            for j in range(len(gmax)):
                gm = gmax[j]
                if not gm > 0 or (gm < g and not (count_left and factor * gm >= theta)):
                    continue
                for b in range(j * group, min((j + 1) * group, n_blocks)):
                    u = ub[b]
                    if u >= g:
                        if u < hi and u > 0:
                            band[m] = b
                            keys[m] = -u
                            m += 1
                    elif count_left and u > 0 and factor * u >= theta:
                        left += 1
            if count_left and postings + (m + left) * (postings / scored) > 2 * budget:  # a clear loser
                ok = False
                break
            if m:
                order = np.argsort(keys[:m])  # highest bound first
                for o in order:
                    b = band[o]
                    if size == k and factor * ub[b] < hs[0]:
                        break  # sorted: the rest of the band is lower still
                    size = _score_block(b, shift, n_rows, qw, fwd_offsets, fwd_terms, fwd_weights,
                                        item_l2, inv_norms, hs, hr, size, k)
                    base = b << shift
                    postings += fwd_offsets[min(base + (1 << shift), n_rows)] - fwd_offsets[base]
                    scored += 1
                    if budget >= 0 and postings > budget:
                        ok = False
                        break
            if not ok or g == 0.0 or (size == k and factor * g <= hs[0]):
                break
            hi = g
            g = g * (0.7 if size == k else 0.25)  # until k rows score, descend fast: few bands
    stats[0] = bands
    stats[1] = scored
    stats[2] = postings
    for qi in range(len(terms)):
        qw[terms[qi]] = 0
    ub[:] = 0
    return ok, hs[:size], hr[:size]
