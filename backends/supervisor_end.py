"""What either supervisor does last, after its client was told the run ended."""

from __future__ import annotations

from . import objects
from .errors import LabdeckError
from .project import Project
from .store import RunStore


def drop_copy_if_ended(project: Project, run_id: str) -> None:
    """The run's materialised copy goes once its status is final (its manifest and the objects
    keep it), off the next submit's path; ``Engine.drop_finished_snapshots`` remains the
    fallback for a supervisor that died first."""
    store = RunStore(project.db_path)
    try:
        ended = store.get(run_id, with_metrics=False).status.is_terminal()
    except LabdeckError:
        ended = False
    finally:
        store.close()
    if ended:
        objects.drop_ended_copy(project.state_dir, project.run_dir(run_id), run_id)
