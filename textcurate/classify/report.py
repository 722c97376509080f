"""Report section of educational-value scoring: per ``edu_score`` step, how many documents reach
each ``edu_int`` threshold and by which path (head, cascade, fastText) they were scored."""

from __future__ import annotations

import numpy as np

from textcurate.io.attributes import attribute_columns, iter_attribute_batches, list_attribute_steps
from textcurate.report.html import esc, section


@section("Educational value", 40)
def _edu(run_dir: str, record: dict) -> str | None:
    parts = []
    for step in list_attribute_steps(run_dir):
        columns = attribute_columns(run_dir, step)
        if "edu_int" not in columns:
            continue  # read only the tables, and columns, this section shows
        at_least, n, path_counts = np.zeros(6, dtype=np.int64), 0, {}
        for batch in iter_attribute_batches(run_dir, step, [c for c in ("edu_int", "edu_path") if c in columns]):
            ints = np.asarray(batch.column(0).to_numpy(zero_copy_only=False), dtype=np.float64)
            n += len(ints)
            at_least += np.array([int((ints >= t).sum()) for t in range(6)])
            if batch.num_columns > 1:
                for p, c in zip(*np.unique(np.asarray(batch.column(1).to_pylist(), dtype=object).astype(str),
                                           return_counts=True)):
                    path_counts[p] = path_counts.get(p, 0) + int(c)
        rows = "".join(f"<tr><td>edu_int &gt;= {t}</td><td>{int(at_least[t]):,}</td>"
                       f"<td>{at_least[t] / max(n, 1):.1%}</td></tr>" for t in range(6))
        paths = ""
        if path_counts:
            total = sum(path_counts.values())
            paths = "<p>scored by: " + ", ".join(f"{p} {c / total:.1%}" for p, c in sorted(path_counts.items())) + "</p>"
        parts.append(f"<h3>{esc(step)}</h3>{paths}<table><tr><th>threshold</th><th>documents</th>"
                     f"<th>kept fraction</th></tr>{rows}</table>")
    return "".join(parts) or None
