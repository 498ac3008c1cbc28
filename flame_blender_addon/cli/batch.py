"""``batch``: many clips through track -> import -> preview -> exports on Ray (:mod:`..batch`).

Nothing is imported from :mod:`..batch` (nor Ray) until the command runs.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .console import CliError, Console, ProgressBar

LISTED = 8  # clip names a summary line shows
REPORT_SECONDS = 5.0  # the report is rewritten at most this often while clips end


def _names(records: list[dict[str, Any]], with_message: bool = False) -> str:
    shown = [f"{r['name']} ({r['message'].splitlines()[0]})" if with_message else r["name"]
             for r in records[:LISTED]]
    return ", ".join(shown) + (f" and {len(records) - LISTED} more" if len(records) > LISTED else "")


def cmd_batch(args, console: Console) -> None:
    from ..batch import layout, manifest, plan, runner
    from .parsing import clip_parser

    started = time.time()
    runner.import_ray()  # before anything else: without Ray nothing can run
    clips = manifest.read_clips(args.sources)
    blender = plan.blender_command(args.blender)
    tracker_python = args.tracker_python or plan.default_tracker_python()
    parse = clip_parser(args)
    run = uuid.uuid4().hex[:12]
    jobs, records = [], {}
    for clip in clips:
        try:
            options = parse.parse_args(manifest.option_argv(clip, parse))
        except ValueError as err:
            raise CliError(f"{clip.where}: {err}") from None
        job = plan.clip_job(clip, options, args.output, blender, tracker_python, run)
        earlier = plan.resumed(job, args.force, args.retry_failed)
        if earlier is None:
            jobs.append(job)
        else:
            records[clip.name] = earlier
    args.output.mkdir(parents=True, exist_ok=True)
    order = [clip.name for clip in clips]

    def report(**fields: Any):
        return layout.write_report(args.output, [records[n] for n in order if n in records],
                                   output=str(args.output), started=time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                                  time.localtime(started)), **fields)

    console.info(f"batch: {len(clips)} clips, {len(records)} finished earlier, {len(jobs)} to run")
    outcome = None
    if jobs:
        bar = ProgressBar(console, "batch", message_width=72)
        written = [0.0]

        def ended(record: dict[str, Any]) -> None:
            records[record["name"]] = record
            if time.monotonic() - written[0] > REPORT_SECONDS:
                report(run=run, interrupted=False)
                written[0] = time.monotonic()
            if record["status"] != layout.DONE:
                bar.note(f"{record['name']}: {record['status']}: {record['message']}")

        settings = runner.RaySettings(args.address, args.workers, args.retries, args.gpus_per_track)
        outcome = runner.run(jobs, settings, lambda p: bar(p.ended / p.total, p.line()), ended)
        records.update(outcome.records)
    path = report(run=run, interrupted=bool(outcome and outcome.interrupted),
                  seconds=outcome and round(outcome.seconds, 3),
                  ray_start_seconds=outcome and round(outcome.ray_start_seconds, 3))
    ended_records = [records[n] for n in order]
    if outcome and outcome.interrupted:
        finished = [r for r in ended_records if r["status"] == layout.DONE]
        cancelled = sum(r["status"] == layout.CANCELLED for r in ended_records)
        raise KeyboardInterrupt(f"interrupted: {len(finished)} of {len(order)} clips finished "
                                f"({_names(finished) or 'none'}), {cancelled} cancelled; run the same command "
                                f"again to resume (report: {path})")
    failed = [r for r in ended_records if r["status"] != layout.DONE]
    if failed:
        raise CliError(f"{len(failed)} of {len(order)} clips failed: {_names(failed, with_message=True)} "
                       f"(logs in {args.output}/<clip>/log.txt, report: {path})")
    resumed = sum(bool(r.get("resumed")) for r in ended_records)
    console.info(f"batch: {len(order)} clips done ({resumed} from earlier runs) in {time.time() - started:.0f} s; "
                 f"report: {path}")
