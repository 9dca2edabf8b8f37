"""Figures of the HTML report (seaborn / matplotlib, Agg backend), each returned as PNG bytes.

Every function takes tables that :mod:`lrbench.stats` or :func:`lrbench.load_curves` produce
(or a light reshaping of them done by :mod:`lrbench.report`) and draws them; none computes a
statistic of its own beyond what a plot needs (the 95 % band around a mean curve, below).
Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, so no pyplot state
(and no display) is involved. Text from the data (names, metrics, titles) is drawn with
``parse_math=False``: a ``$`` in a name is a dollar sign, not mathtext.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Callable, Mapping, Sequence

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # seaborn imports pyplot: make it headless, unless set already
    matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import NullFormatter, ScalarFormatter  # noqa: E402

__all__ = [
    "palette", "to_png", "curves_png", "lr_png", "ecdf_png", "profiles_png", "cd_png", "trajectory_png",
    "robustness_png", "BAND",
]

DPI = 96
BAND = "95% bootstrap percentile interval of the mean over seeds (1000 resamples)"
"""What the band around a mean curve is (for captions)."""


def palette(names: Sequence[str]) -> dict[str, tuple]:
    """One colour per name (sorted), stable within a figure set."""
    names = sorted(dict.fromkeys(names))
    colours = sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))
    return dict(zip(names, colours))


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes (one draw: fixed margins, no layout engine, which triples the
    cost of a figure on a slow machine)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _figure(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> tuple[Figure, list]:
    """A figure of ``ncols`` panels, each ``width`` inches wide (plus margins), with room on the
    right for the legend (:func:`_legend`)."""
    side = 2.4
    total = width * ncols + side
    fig = Figure(figsize=(total, height))
    fig.subplots_adjust(left=0.9 / total, right=1 - side / total, bottom=0.55 / height, top=1 - 0.45 / height,
                        wspace=0.3)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _band(values) -> tuple[float, float]:
    """Percentile-bootstrap 95 % interval of the mean of ``values`` (seaborn ``errorbar``
    callable; vectorised, unlike seaborn's own per-point loop). ``NaN`` below two values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, len(v), size=(1000, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _order(data: pd.DataFrame, colours: Mapping[str, tuple]) -> list[str]:
    """The optimizers present in ``data``, in the palette's (sorted) order."""
    present = set(data["optimizer"])
    return [n for n in colours if n in present]


def _positive(values: pd.Series) -> bool:
    v = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(v)) and bool((v > 0).all())


def _legend(fig: Figure, axes: list, title: str | None = None) -> None:
    """One legend for the figure, right of the panels (from the last panel with one); the
    panels' own legends (seaborn adds them) are removed."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        if h:
            handles, labels = h, lab
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if handles:
        legend = fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(axes[-1].get_position().x1 + 0.01,
                            axes[-1].get_position().y1), fontsize="small", title=title, title_fontsize="small",
                            frameon=False)
        for text in [*legend.get_texts(), legend.get_title()]:
            text.set_parse_math(False)


def curves_png(curves: pd.DataFrame, metrics: Sequence[str], colours: Mapping[str, tuple],
               title: str = "") -> bytes:
    """Mean curve over seeds of each metric against the step, one panel per metric.

    Args:
        curves: long table with ``optimizer``, ``seed``, ``step`` and one column per metric.
        metrics: the columns to draw (a loss-like metric with only positive values gets a
            log axis).
        colours: optimizer -> colour (:func:`palette`).
        title: figure title.
    """
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        data = curves[["optimizer", "step", metric]].replace([np.inf, -np.inf], np.nan).dropna()
        sns.lineplot(data=data, x="step", y=metric, hue="optimizer", hue_order=_order(data, colours),
                     palette=colours, errorbar=_band, ax=ax, linewidth=1.2)
        if _positive(data[metric]):
            ax.set_yscale("log")
        ax.set_ylabel(metric, parse_math=False)
        ax.set_title(f"{title}: {metric}" if title else metric, fontsize="medium", parse_math=False)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return to_png(fig)


def lr_png(curves: pd.DataFrame, lr_columns: Sequence[str], colours: Mapping[str, tuple], title: str = "") -> bytes:
    """Effective learning rate (``lr_<group>``) against the step, mean over seeds, log y axis;
    one line style per parameter group when there are several."""
    long = curves.melt(id_vars=["optimizer", "seed", "step"], value_vars=list(lr_columns), var_name="group",
                       value_name="effective lr")
    long = long.replace([np.inf, -np.inf], np.nan).dropna()
    long = long[long["effective lr"] > 0]
    fig, (ax,) = _figure(width=6.0)
    style = "group" if len(lr_columns) > 1 else None
    sns.lineplot(data=long, x="step", y="effective lr", hue="optimizer", hue_order=_order(long, colours),
                 style=style, palette=colours, errorbar=_band, ax=ax, linewidth=1.2)
    if len(long):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    _legend(fig, [ax])
    if title:
        ax.set_title(f"{title}: effective learning rate", fontsize="medium", parse_math=False)
    return to_png(fig)


def ecdf_png(ecdf: pd.DataFrame, colours: Mapping[str, tuple], title: str = "") -> bytes:
    """Runtime distribution (:func:`lrbench.stats.ecdf_table`): the fraction of (seed,
    threshold) pairs reached against the step, one step curve per optimizer."""
    fig, (ax,) = _figure(width=6.0)
    for name, g in ecdf.groupby("optimizer", sort=True):
        steps = [0.0] + g["step"].astype(float).tolist()
        frac = [0.0] + g["fraction"].astype(float).tolist()
        ax.plot(steps, frac, drawstyle="steps-post", color=colours.get(name), label=name, linewidth=1.4)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("(seed, threshold) pairs reached")
    ax.grid(alpha=0.3)
    _legend(fig, [ax])
    if title:
        ax.set_title(f"{title}: steps to threshold (ECDF)", fontsize="medium", parse_math=False)
    return to_png(fig)


def profiles_png(profiles: Mapping[str, pd.DataFrame], colours: Mapping[str, tuple], title: str = "") -> bytes:
    """Dolan–Moré performance profiles (:func:`lrbench.stats.performance_profile`), one panel
    per measure (e.g. ``{"steps": ..., "seconds": ...}``): rho(tau) against tau, log x axis."""
    fig, axes = _figure(len(profiles), width=4.6)
    for ax, (measure, prof) in zip(axes, profiles.items()):
        finite = prof["tau"][np.isfinite(prof["tau"])]
        right = max(2.0, float(finite.max()) * 1.5) if len(finite) else 2.0
        for name, g in prof.groupby("optimizer", sort=True):
            g = g.sort_values("tau")
            taus = g["tau"].tolist() + [right]
            rhos = g["rho"].tolist() + [g["rho"].iloc[-1]]
            ax.plot(taus, rhos, drawstyle="steps-post", color=colours.get(name), label=name, linewidth=1.4)
        ax.set_xscale("log")
        ax.set_xlim(1.0, right)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(-0.02, 1.02)
        n = int(prof["instances"].iloc[0]) if len(prof) else 0
        ax.set_title(f"{title}: {measure} ({n} instances)" if title else f"{measure} ({n} instances)",
                     fontsize="medium", parse_math=False)
        ax.set_xlabel("τ (cost / best cost)")
        ax.set_ylabel("ρ(τ)")
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return to_png(fig)


def _cliques(ranks: Sequence[float], cd: float) -> list[tuple[int, int]]:
    """Maximal runs ``(i, j)`` (i < j) of sorted mean ranks spanning no more than ``cd``."""
    out: list[tuple[int, int]] = []
    for i in range(len(ranks)):
        j = i
        while j + 1 < len(ranks) and ranks[j + 1] - ranks[i] <= cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out


def cd_png(mean_ranks: pd.DataFrame, cd: float, k: int, title: str = "") -> bytes:
    """Critical-difference diagram (Demšar, 2006): the optimizers' mean ranks on an axis (1 =
    best, on the left), a bar of length ``cd`` (Nemenyi), and thick bars joining the groups of
    optimizers whose mean ranks lie within ``cd`` of each other (not significantly different).

    Args:
        mean_ranks: ``optimizer, mean_rank`` (:attr:`lrbench.stats.RankResult.mean_ranks`).
        cd: the critical difference (``NaN``: no bar, no groups).
        k: the number of optimizers ranked (the axis runs 1..k).
        title: figure title.
    """
    mr = mean_ranks.sort_values("mean_rank").reset_index(drop=True)
    names, ranks = mr["optimizer"].tolist(), mr["mean_rank"].astype(float).tolist()
    n = len(names)
    half = (n + 1) // 2
    cliques = _cliques(ranks, cd) if math.isfinite(cd) else []
    # vertical positions in inches from the top (the y axis is inverted)
    y_title, y_cd, y_axis = 0.2, 0.55, 0.95
    y_cliques = [y_axis + 0.18 * (c + 1) for c in range(len(cliques))]
    y_rows = y_axis + 0.18 * len(cliques) + 0.35
    height = y_rows + 0.26 * max(half, n - half) + 0.1
    fig = Figure(figsize=(7.5, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(height, 0)
    ax.axis("off")
    lo, hi = 1.0, float(max(k, 2))
    left, right = 0.25, 0.75  # the rank axis; labels beside it

    def x(r: float) -> float:
        return left + (r - lo) / (hi - lo) * (right - left)

    if title:
        ax.text(0.5, y_title, title, ha="center", va="center", fontsize="medium", parse_math=False)
    ax.plot([x(lo), x(hi)], [y_axis, y_axis], color="black", linewidth=1)
    for r in range(1, int(hi) + 1):
        ax.plot([x(r), x(r)], [y_axis, y_axis - 0.08], color="black", linewidth=1)
        ax.text(x(r), y_axis - 0.1, str(r), ha="center", va="bottom", fontsize="small")
    for r in np.arange(1.5, hi, 1.0):
        ax.plot([x(r), x(r)], [y_axis, y_axis - 0.04], color="black", linewidth=0.7)
    if math.isfinite(cd):
        end = x(min(lo + cd, hi))
        ax.plot([x(lo), end], [y_cd, y_cd], color="black", linewidth=1.5)
        ax.plot([x(lo), x(lo)], [y_cd - 0.04, y_cd + 0.04], color="black", linewidth=1.5)
        ax.plot([end, end], [y_cd - 0.04, y_cd + 0.04], color="black", linewidth=1.5)
        ax.text((x(lo) + end) / 2, y_cd - 0.06, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize="small")
    for i, (name, r) in enumerate(zip(names, ranks)):
        if i < half:  # best half: labels on the left
            y = y_rows + 0.26 * i
            ax.plot([x(r), x(r), left - 0.02], [y_axis, y, y], color="black", linewidth=0.8)
            ax.text(left - 0.03, y, f"{name} ({r:.2f})", ha="right", va="center", fontsize="small",
                    parse_math=False)
        else:
            y = y_rows + 0.26 * (n - 1 - i)
            ax.plot([x(r), x(r), right + 0.02], [y_axis, y, y], color="black", linewidth=0.8)
            ax.text(right + 0.03, y, f"({r:.2f}) {name}", ha="left", va="center", fontsize="small",
                    parse_math=False)
    for (i, j), y in zip(cliques, y_cliques):
        ax.plot([x(ranks[i]) - 0.008, x(ranks[j]) + 0.008], [y, y], color="black", linewidth=4,
                solid_capstyle="round")
    return to_png(fig)


def trajectory_png(f: Callable, trajectories: Mapping[str, np.ndarray], colours: Mapping[str, tuple],
                   title: str = "", minimum: tuple[float, float] | None = None) -> bytes:
    """Trajectories of a 2-D problem over the contours of its objective (as seed 001, Fig. 1).

    Args:
        f: the objective ``f(x, y)`` (elementwise on arrays; tried on NumPy arrays, then on
            torch tensors).
        trajectories: optimizer -> array of points ``(n, 2)`` in evaluation order.
        colours: optimizer -> colour.
        title: figure title.
        minimum: a point to mark (e.g. the known minimiser), or ``None``.

    The box spans the finite points of all trajectories (with a margin); contour levels are
    log-spaced between the smallest positive and the largest value of ``f`` in the box.
    """
    pts = np.concatenate([np.asarray(t, float) for t in trajectories.values()]) if trajectories else np.zeros((0, 2))
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if minimum is not None:
        pts = np.vstack([pts, np.asarray(minimum, float)[None, :]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.maximum(hi - lo, 0.5)
    lo, hi = lo - 0.15 * span, hi + 0.15 * span
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    z = _evaluate(f, gx, gy)
    fig, (ax,) = _figure(width=5.0, height=4.6)
    pos = z[np.isfinite(z) & (z > 0)]
    if len(pos):
        zmin, zmax = max(float(pos.min()), float(pos.max()) * 1e-12), float(pos.max())
        if zmax > zmin:
            levels = np.logspace(np.log10(zmin), np.log10(zmax), 25)
            zc = np.clip(np.where(np.isfinite(z), z, zmax), zmin, zmax)
            ax.contourf(gx, gy, zc, levels=levels, norm=LogNorm(zmin, zmax), cmap="viridis", alpha=0.25)
            ax.contour(gx, gy, zc, levels=levels, colors="0.45", linewidths=0.4)
    for name, t in trajectories.items():
        t = np.asarray(t, float)
        ax.plot(t[:, 0], t[:, 1], color=colours.get(name), label=name, linewidth=1.5, marker=".", markersize=2.5)
        ax.plot(t[-1, 0], t[-1, 1], marker="o", color=colours.get(name), markersize=5)
    if len(trajectories):
        first = np.asarray(next(iter(trajectories.values())), float)[0]
        ax.plot(first[0], first[1], marker="s", color="black", markersize=5, linestyle="none", label="start")
    if minimum is not None:
        ax.plot(*minimum, marker="*", color="red", markersize=10, linestyle="none", label="minimum")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    _legend(fig, [ax])
    if title:
        ax.set_title(f"{title}: trajectories", fontsize="medium", parse_math=False)
    return to_png(fig)


def _evaluate(f: Callable, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        try:
            return np.asarray(f(gx, gy), dtype=float)
        except Exception:  # noqa: BLE001 - an objective written with torch functions only
            import torch

            return f(torch.from_numpy(gx), torch.from_numpy(gy)).detach().cpu().numpy().astype(float)


def robustness_png(points: pd.DataFrame, colours: Mapping[str, tuple], title: str = "") -> bytes:
    """Final train loss against the (initial) learning rate, log-log, mean over seeds with a
    95 % band; grid values at which some run diverged or failed are marked ``×`` on the top edge.

    Args:
        points: one row per run: ``optimizer``, ``lr``, ``final_train_loss``, ``status``.
        colours: optimizer -> colour.
        title: figure title.
    """
    fig, (ax,) = _figure(width=6.0)
    ok = points[(points["status"] == "ok")].replace([np.inf, -np.inf], np.nan).dropna(subset=["final_train_loss"])
    ok = ok[ok["final_train_loss"] > 0]
    if len(ok):
        sns.lineplot(data=ok, x="lr", y="final_train_loss", hue="optimizer", hue_order=_order(ok, colours),
                     palette=colours, errorbar=_band, marker="o", ax=ax, linewidth=1.2)
        ax.set_yscale("log")
    bad = points[points["status"] != "ok"]
    for name, g in bad.groupby("optimizer", sort=True):
        ax.scatter(g["lr"].unique(), [0.97] * g["lr"].nunique(), marker="x", color=colours.get(name),
                   transform=ax.get_xaxis_transform(), label=f"{name}: diverged/failed", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("(initial) learning rate")
    ax.set_ylabel("final train loss")
    ax.grid(alpha=0.3)
    _legend(fig, [ax])
    if title:
        ax.set_title(f"{title}: final loss against the learning rate", fontsize="medium", parse_math=False)
    return to_png(fig)
