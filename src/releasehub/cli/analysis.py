"""`releasehub analyze`, `releasehub compare` and `releasehub paper`: the access profile from the terminal."""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# The analysis package (with numpy and gguf) is imported by the commands that run, not by every
# `releasehub` command: the CLI starts in a fraction of the time.
if TYPE_CHECKING:
    from releasehub.analysis.profile import Options

console = Console()
err_console = Console(stderr=True)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    with Progress(TextColumn("reading weight headers"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        task = progress.add_task("headers", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _options(context: Optional[int], gpu: Optional[List[str]], precision: Optional[str], overhead: float,
             kv_dtype: str, batch: int, kwh_price: float, utilisation: float, throughput: Optional[float],
             gpu_hour: Optional[float]) -> "Options":
    from releasehub.analysis import resourcing as r
    from releasehub.analysis.hardware import DEFAULT_GPUS, find_accelerator
    from releasehub.analysis.profile import Options

    try:
        gpus = tuple(find_accelerator(name).id for name in gpu) if gpu else DEFAULT_GPUS
        if precision is not None:
            r.precision_bytes(precision)
        r.precision_bytes(kv_dtype)
    except ValueError as exc:
        _fail(str(exc))
    if context is not None and context <= 0:
        _fail("--context must be a positive number of tokens")
    if batch <= 0 or overhead < 0 or not 0 < utilisation <= 1 or kwh_price < 0:
        _fail("--batch must be positive, --overhead not negative, --utilisation in (0, 1] and --kwh-price not negative")
    assumptions = replace(r.Assumptions(), overhead_fraction=overhead, kv_dtype=kv_dtype, batch=batch,
                          kwh_price_usd=kwh_price, utilisation=utilisation, context=context)
    return Options(context=context, gpus=gpus, precision=precision, assumptions=assumptions,
                   throughput=throughput, gpu_hour=gpu_hour)


def profile_of(target: str, *, endpoint: Optional[str], token: Optional[str], revision: Optional[str],
               options: "Options", progress: bool = True) -> dict:
    """Resolve TARGET (path, repo on an endpoint, or catalogue name) and build its profile."""
    from releasehub.analysis.catalogue import find_model, nearest_names
    from releasehub.analysis.profile import build_profile
    from releasehub.analysis.snapshot import HubSnapshot, LocalDirSnapshot, LocalFileSnapshot, Snapshot

    snapshot: Snapshot | None
    path = Path(target).expanduser()
    if path.exists():
        snapshot = LocalDirSnapshot(path) if path.is_dir() else LocalFileSnapshot(path)
        entry = None
    elif endpoint and REPO_ID.match(target):
        snapshot = HubSnapshot(endpoint, target, revision=revision, token=token)
        entry = find_model(target)
        if entry is not None and (entry.hub_id or "").lower() != target.lower():
            entry = None
    else:
        entry = find_model(target)
        if entry is None:
            hint = (" (a repo id needs --endpoint URL or HF_ENDPOINT)" if REPO_ID.match(target) else "")
            near = nearest_names(target)
            suggestion = (f" Did you mean {' or '.join(near)}?" if near
                          else " `releasehub compare --list` shows the catalogue.")
            _fail(f"{target!r} is not a file, a directory or a catalogue model{hint}.{suggestion}")
        snapshot = None
    try:
        with _progress(progress and snapshot is not None and not isinstance(snapshot, LocalFileSnapshot)) as update:
            return build_profile(snapshot, entry=entry, options=replace(options, progress=update))
    finally:
        if isinstance(snapshot, HubSnapshot):
            snapshot.close()


def _emit(text: str, output: Optional[Path]) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        err_console.print(f"wrote {output}")


GpuOption = typer.Option(None, "--gpu", help="Accelerator to plan for (repeatable), e.g. h100-80gb, rtx-4090.")
ContextOption = typer.Option(None, "--context", help="Tokens of KV cache per sequence (default: the model's "
                                                     "maximum, at most 131,072).")
PrecisionOption = typer.Option(None, "--precision", help="Serving precision: fp32, bf16, fp16, fp8, int8, int4 "
                                                         "(default: as published).")
OverheadOption = typer.Option(0.2, "--overhead", help="Serving memory beyond weights and KV cache, as a share of "
                                                      "the weights.")
KvDtypeOption = typer.Option("bf16", "--kv-dtype", help="Precision of the KV cache.")
BatchOption = typer.Option(1, "--batch", help="Concurrent sequences in the KV cache.")
KwhOption = typer.Option(0.177, "--kwh-price", help="Electricity price in USD per kWh (default: U.S. average).")
UtilisationOption = typer.Option(1.0, "--utilisation", help="Share of the year the GPUs draw rated power.")
ThroughputOption = typer.Option(None, "--throughput", help="Measured tokens per second of the deployment, for "
                                                           "the cost per million tokens.")
GpuHourOption = typer.Option(None, "--gpu-hour", help="Rental price per GPU-hour in USD (default: catalogue).")
EndpointOption = typer.Option(None, "--endpoint", envvar="HF_ENDPOINT",
                              help="A Hub-compatible server (or HF_ENDPOINT) for a repo id TARGET.")
TokenOption = typer.Option(None, "--token", envvar="HF_TOKEN", help="Token for that server (or HF_TOKEN).")
FormatOption = typer.Option(Format.table, "--format", help="table, json, markdown or html.")
OutputOption = typer.Option(None, "--output", "-o", help="Write to this file instead of standard output.")


def analyze(
    target: str = typer.Argument(..., help="A local directory, a .safetensors/.gguf file, a config.json, a repo id "
                                           "on --endpoint, or a catalogue name (see `releasehub compare --list`)."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit of a repo."),
    context: Optional[int] = ContextOption,
    gpu: Optional[List[str]] = GpuOption,
    precision: Optional[str] = PrecisionOption,
    overhead: float = OverheadOption,
    kv_dtype: str = KvDtypeOption,
    batch: int = BatchOption,
    kwh_price: float = KwhOption,
    utilisation: float = UtilisationOption,
    throughput: Optional[float] = ThroughputOption,
    gpu_hour: Optional[float] = GpuHourOption,
    format: Format = FormatOption,
    chart: Optional[Path] = typer.Option(None, "--chart", help="Also draw charts into this .png or .svg file."),
    output: Optional[Path] = OutputOption,
) -> None:
    """The access profile of one model: what it takes to run, use and build on it."""
    from releasehub.analysis.readers.source import AnalysisError
    from releasehub.analysis.render import profile_sections, to_html, to_json, to_markdown, to_rich

    options = _options(context, gpu, precision, overhead, kv_dtype, batch, kwh_price, utilisation, throughput,
                       gpu_hour)
    try:
        profile = profile_of(target, endpoint=endpoint, token=token, revision=revision, options=options,
                             progress=format is Format.table and output is None)
        if chart is not None:
            from releasehub.analysis.charts import write_chart

            write_chart([profile], chart, gpu=options.gpus[0])
            err_console.print(f"wrote {chart}")
    except (AnalysisError, ValueError) as exc:
        _fail(str(exc))
    title = f"Access profile: {profile.get('name') or target}"
    if format is Format.json:
        _emit(to_json(profile), output)
    elif format is Format.markdown:
        _emit(to_markdown(profile_sections(profile), title), output)
    elif format is Format.html:
        _emit(to_html(profile_sections(profile), title), output)
    else:
        out = Console(file=open(output, "w")) if output else console  # noqa: SIM115
        for item in to_rich(profile_sections(profile)):
            out.print(item)


def compare(
    targets: List[str] = typer.Argument(None, help="Two or more targets, as for `analyze`."),
    endpoint: Optional[str] = EndpointOption,
    token: Optional[str] = TokenOption,
    context: Optional[int] = ContextOption,
    gpu: str = typer.Option("h100-80gb", "--gpu", help="The accelerator of the hosting rows."),
    precision: Optional[str] = PrecisionOption,
    overhead: float = OverheadOption,
    kwh_price: float = KwhOption,
    throughput: Optional[float] = ThroughputOption,
    gpu_hour: Optional[float] = GpuHourOption,
    format: Format = FormatOption,
    chart: Optional[Path] = typer.Option(None, "--chart", help="Also draw charts into this .png or .svg file."),
    output: Optional[Path] = OutputOption,
    list_: bool = typer.Option(False, "--list", help="List the reference catalogue and exit."),
) -> None:
    """Models side by side in the paper's three tables: resourcing, technical usability, utility."""
    from releasehub.analysis.compare import compare_sections
    from releasehub.analysis.readers.source import AnalysisError
    from releasehub.analysis.render import to_html, to_json, to_markdown, to_rich

    if list_:
        from releasehub.analysis.catalogue import load_catalogue

        for entry in load_catalogue().values():
            typer.echo(f"{entry.id:34} {entry.weights:6} {entry.name}")
        return
    if not targets or len(targets) < 2:
        _fail("give two or more models to compare (catalogue names, paths or repo ids); `--list` shows the catalogue")
    options = _options(context, [gpu], precision, overhead, "bf16", 1, kwh_price, 1.0, throughput, gpu_hour)
    try:
        profiles = [profile_of(t, endpoint=endpoint, token=token, revision=None, options=options, progress=False)
                    for t in targets]
        if chart is not None:
            from releasehub.analysis.charts import write_chart

            write_chart(profiles, chart, gpu=options.gpus[0])
            err_console.print(f"wrote {chart}")
    except (AnalysisError, ValueError) as exc:
        _fail(str(exc))
    sections = compare_sections(profiles, gpu=options.gpus[0])
    title = "Comparing " + ", ".join(str(p.get("name")) for p in profiles)
    if format is Format.json:
        _emit(to_json({"gpu": options.gpus[0], "profiles": profiles,
                       "tables": [{"title": s.title, "columns": list(s.columns), "rows": [list(r) for r in s.rows]}
                                  for s in sections]}), output)
    elif format is Format.markdown:
        _emit(to_markdown(sections, title), output)
    elif format is Format.html:
        _emit(to_html(sections, title), output)
    else:
        for item in to_rich(sections):
            console.print(item)


def paper_value(value: float, unit: str) -> str:
    if unit == "GPUs":
        return f"{int(value)} GPUs"
    if unit == "USD":
        return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
    return f"{value:,.2f} {unit}"


def paper(format: Format = FormatOption, output: Optional[Path] = OutputOption) -> None:
    """The resourcing figures of "Beyond Release" (2025), recomputed, with corrections where it is wrong."""
    from releasehub.analysis.paper import PAPER, paper_figures
    from releasehub.analysis.render import Section, to_html, to_json, to_markdown, to_rich

    figures = paper_figures()
    if format is Format.json:
        _emit(to_json([f.as_dict() for f in figures]), output)
        return
    section = Section(PAPER, ("figure", "paper", "recomputed", "reproduced", "correct figure", "how"))
    for f in figures:
        shown = paper_value(f.computed, f.unit)
        section.rows.append((f.label, f.printed, shown, "yes" if f.agrees else "no", f.correct or "—", f.why))
    if format is Format.markdown:
        _emit(to_markdown([section]), output)
    elif format is Format.html:
        _emit(to_html([section], PAPER), output)
    else:
        for item in to_rich([section]):
            console.print(item)


__all__ = ["analyze", "compare", "paper", "profile_of"]
