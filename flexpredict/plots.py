"""Plots users ask for: the cost-throughput Pareto front of a recommendation."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Positions of points no other point beats on both lower cost and higher value, by increasing cost."""
    order = np.lexsort((-value, cost))
    front, best = [], -np.inf
    for i in order:
        if value[i] > best:
            front.append(i)
            best = value[i]
    return np.array(front, dtype=int)


def pareto_plot(result, path: Path | str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = result.candidates
    frame = frame[frame["throughput"].notna() & frame["usd_per_hour"].notna()] if len(frame) else frame
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if len(frame):
        feasible = frame.index.isin(result.ranked.index)
        ax.scatter(
            frame.loc[~feasible, "usd_per_hour"],
            frame.loc[~feasible, "throughput"],
            s=8,
            c="0.75",
            label="fails SLO or budget",
        )
        ax.scatter(
            frame.loc[feasible, "usd_per_hour"],
            frame.loc[feasible, "throughput"],
            s=14,
            c="tab:blue",
            label="meets SLO within budget",
        )
        if feasible.any():
            ok = frame[feasible]
            front = pareto_front(ok["usd_per_hour"].to_numpy(), ok["throughput"].to_numpy())
            points = ok.iloc[front]
            ax.plot(points["usd_per_hour"], points["throughput"], "-o", c="tab:orange", ms=4, label="Pareto front")
            for _, row in points.head(8).iterrows():
                ax.annotate(
                    f"{row['accelerators_total']}x {row['accelerator'].split('-', 1)[-1]} {row['precision']}",
                    (row["usd_per_hour"], row["throughput"]),
                    fontsize=6,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("$ per hour per replica")
    ax.set_ylabel(f"predicted {result.unit} per replica")
    ax.set_title(f"{result.model['id']} · {result.scenario}: cost vs throughput", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
