"""`qstat -u '*' -xml` read into Jobs (core/jobs.py), and the same XML written, for tests and the bench.

Grid Engine lists running jobs under `queue_info` and pending ones under `job_info`, each a
`job_list` element with `JB_job_number`, `JB_name`, `JB_owner` and `state`. Elements we do not
use are ignored; a job_list without a name or state is skipped, not fatal.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from xml.sax.saxutils import escape

from toolforgectl.core.errors import WebserviceError
from toolforgectl.core.jobs import Job


def parse(xml: bytes | str) -> list[Job]:
    """Every job in qstat's XML; WebserviceError when it is not XML."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise WebserviceError(f"qstat -xml answered something that is not XML: {exc}") from None
    jobs = []
    for element in root.iter("job_list"):
        name, state = element.findtext("JB_name"), element.findtext("state")
        if name and state:
            number = (element.findtext("JB_job_number") or "").strip()
            owner = (element.findtext("JB_owner") or "").strip()
            jobs.append(Job(number, name.strip(), owner, state.strip()))
    return jobs


def render(jobs: Iterable[Job]) -> str:
    """qstat's XML for `jobs`: running-like states under queue_info, the others under job_info."""
    running: list[str] = []
    pending: list[str] = []
    for job in jobs:
        (pending if "q" in job.state else running).append(_job_list(job))
    return (
        "<?xml version='1.0'?>\n<job_info xmlns:xsd=\"http://arc.liv.ac.uk/repos/darcs/sge/source/"
        'dist/util/resources/schemas/qstat/qstat.xsd">\n'
        f"  <queue_info>\n{''.join(running)}  </queue_info>\n"
        f"  <job_info>\n{''.join(pending)}  </job_info>\n</job_info>\n"
    )


def _job_list(job: Job) -> str:
    kind = "pending" if "q" in job.state else "running"
    return (
        f'    <job_list state="{kind}">\n'
        f"      <JB_job_number>{escape(job.number)}</JB_job_number>\n"
        "      <JAT_prio>0.25000</JAT_prio>\n"
        f"      <JB_name>{escape(job.name)}</JB_name>\n"
        f"      <JB_owner>{escape(job.owner)}</JB_owner>\n"
        f"      <state>{escape(job.state)}</state>\n"
        "      <JAT_start_time>2026-01-01T00:00:00</JAT_start_time>\n"
        "      <queue_name>webgrid-generic@exec-01</queue_name>\n"
        "      <slots>1</slots>\n"
        "    </job_list>\n"
    )
