"""Figures that several chapters draw: an utterance's signal with its phone segmentation
underneath (chapter 1, the CTC spikes of chapter 6, the sensitivity maps of Figure 3)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from asrlib import features as F

VIEWS = ("waveform", "log-mel", "features", "frame labels")


def draw_segmentation(ax, starts, ends, labels, scale: float = 1.0, fontsize: float = 8, shade: bool = True) -> None:
    """Phone boundaries as a strip of labelled boxes on ``ax`` (x in ``scale`` units per sample,
    e.g. ``1 / sample_rate`` for seconds or ``1 / HOP_LENGTH`` for frames)."""
    for k, (s, e, lab) in enumerate(zip(starts, ends, labels)):
        x0, x1 = s * scale, e * scale
        if shade:
            ax.axvspan(x0, x1, color="0.85" if k % 2 else "0.95", lw=0)
        ax.axvline(x0, color="0.4", lw=0.5)
        ax.text((x0 + x1) / 2, 0.5, lab, ha="center", va="center", fontsize=fontsize, rotation=90 if len(lab) > 2 else 0)
    ax.set_ylim(0, 1)
    ax.set_yticks([])


def plot_utterance(utt, view: str = "log-mel", phone_labels=None, figsize=(11, 4.2), title: str | None = None):
    """One utterance in one of :data:`VIEWS`, with its phone segmentation in a strip underneath.

    Parameters
    ----------
    utt : asrlib.corpus.Utterance
    view : str
        ``"waveform"``, ``"log-mel"`` (the 40 static filter-bank channels), ``"features"`` (all
        123 normalised inputs) or ``"frame labels"`` (the phone index of every frame).
    phone_labels : list of str, optional
        Labels to print in the strip (default: the utterance's fine labels).
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    labels = phone_labels if phone_labels is not None else utt.phones
    fig, (ax, strip) = plt.subplots(2, 1, figsize=figsize, sharex=True, height_ratios=[5, 1], layout="constrained")
    seconds = 1 / utt.sample_rate
    frame_time = F.HOP_LENGTH / utt.sample_rate
    if view == "waveform":
        t = np.arange(len(utt.audio)) * seconds
        ax.plot(t, utt.audio, lw=0.4)
        ax.set_ylabel("amplitude")
    elif view == "log-mel":
        img = F.filterbank(utt.audio)[:, : F.N_MELS].T
        ax.imshow(img, origin="lower", aspect="auto", cmap="magma", extent=(0, img.shape[1] * frame_time, 0, F.N_MELS))
        ax.set_ylabel("mel channel")
    elif view == "features":
        img = utt.features.T
        ax.imshow(img, origin="lower", aspect="auto", cmap="coolwarm", vmin=-3, vmax=3,
                  extent=(0, img.shape[1] * frame_time, 0, F.NUM_FEATURES))
        for y, name in ((20, "40 mel + energy"), (61, "first derivatives"), (102, "second derivatives")):
            ax.text(0.005, y, name, transform=ax.get_yaxis_transform(), fontsize=8, va="center",
                    bbox=dict(facecolor="white", alpha=0.7, lw=0))
        for y in (41, 82):
            ax.axhline(y, color="k", lw=0.6)
        ax.set_ylabel("input dimension")
    else:
        t = np.arange(len(utt.frame_targets)) * frame_time
        ax.step(t, utt.frame_targets, where="post", lw=0.8)
        ax.set_ylabel("phone index")
    draw_segmentation(strip, utt.starts, utt.ends, labels, scale=seconds)
    strip.set_xlabel("time (s)")
    ax.set_xlim(0, len(utt.audio) * seconds)
    ax.set_title(title if title is not None else f"{utt.id} ({utt.speaker}): {utt.text}", fontsize=10)
    return fig
