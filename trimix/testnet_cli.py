"""`trimix testnet`: a whole network on loopback, and its smoke run."""

from __future__ import annotations

import json
import random
import tempfile
import time
from functools import partial
from pathlib import Path

import click

from directory.fetcher import ConsensusFetcher
from mixclient import ClientError
from mixnode.gateway_client import GatewayError
from mixnode.link_driver import LinkClosed
from trimix.testnet import (
    TestnetPlan,
    TestnetProcesses,
    network_drops,
    plan_testnet,
    wait_for_consensus,
)


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write keys, configurations and logs (default: a fresh temporary directory).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option("--smoke", is_flag=True, help="Send packets end to end and report delivery and latency.")
@click.option("--epoch-seconds", type=click.FloatRange(min=3), default=6.0, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0.1, max=50), default=20.0, show_default=True,
              help="Smoke run: packets per second (at most 50, what a gateway admits from one "
                   "client link at least).")
@click.option("--json", "as_json", is_flag=True, help="Print the smoke report as one JSON line.")
@click.option("--demo", is_flag=True,
              help="Two clients exchange messages of several sizes and an anonymous message "
                   "with its reply; print delivery, latency and their link counts.")
@click.option("--clients", type=click.IntRange(0, 100), default=0,
              help="Write this many client configurations (for trimix send/receive, "
                   "trimix client run, examples/chat.py) and print their paths.")
@click.option("--client-rate", type=click.FloatRange(min=0.5, max=1000), default=None,
              help="λ_P of the consensus, per second (default 2, or 20 with --demo).")
def testnet(
    directory: Path | None,
    duration: float | None,
    smoke: bool,
    epoch_seconds: float,
    rate: float,
    as_json: bool,
    demo: bool,
    clients: int,
    client_rate: float | None,
) -> None:
    """Start 3 authorities, 3 layers of 2 mixes and 2 gateways on 127.0.0.1, each its own
    process, and wait for a verified consensus; with --smoke, prove the path end to end;
    with --demo, run two clients through it."""
    import trio

    from trimix.demo import DEMO_RATES
    from trimix.testnet import DEFAULT_CLIENT_RATES

    if smoke and demo:
        raise click.UsageError("--smoke and --demo are two different runs: choose one")
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="trimix-testnet-"))
    rates = DEMO_RATES if demo else DEFAULT_CLIENT_RATES
    if client_rate is not None:
        rates = (client_rate, *rates[1:])
    plan = plan_testnet(directory, epoch_seconds=epoch_seconds, client_rates=rates)
    for index in range(clients):
        gateway = plan.gateways[index % len(plan.gateways)]
        path = plan.client_config(f"client-{index + 1}", gateway=gateway)
        click.echo(f"client {index + 1}: {path} (at {gateway.name})", err=True)
    if clients:
        click.echo(
            "once the consensus is up: `trimix receive --config CLIENT_TOML` prints a client's "
            "address; `echo hi | trimix send ADDRESS --config CLIENT_TOML` writes to it; "
            "`python examples/chat.py --config CLIENT_TOML [--peer ADDRESS]` chats",
            err=True,
        )
    processes = TestnetProcesses(plan)
    click.echo(f"testnet in {directory} (epochs of {epoch_seconds:g} s)", err=True)
    try:
        processes.start_all()
        click.echo(
            f"started {len(plan.authorities)} authorities and {len(plan.nodes)} nodes", err=True
        )
        report = trio.run(_run, plan, processes, duration, smoke, rate, demo)
    except (LinkClosed, GatewayError, ClientError, trio.TooSlowError) as error:
        raise click.ClickException(f"the testnet did not work: {error}; see the logs in {directory}") from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        report = None
    finally:
        codes = processes.stop_all()
        unclean = {name: code for name, code in codes.items() if code != 0}
        click.echo(
            "stopped every process" + (f" (unclean exits: {unclean})" if unclean else " cleanly"),
            err=True,
        )
    if report is not None and demo:
        if as_json:
            click.echo(json.dumps(report, sort_keys=True))
        if not report["ok"]:
            raise click.ClickException(
                "the demo failed: a message was lost, damaged or delivered twice"
            )
        return
    if report is not None:
        if as_json:
            click.echo(json.dumps(report, sort_keys=True))
        if report.get("delivered") != report.get("sent"):
            raise click.ClickException(
                f"only {report['delivered']} of {report['sent']} packets arrived"
            )


async def _run(
    plan: TestnetPlan,
    processes: TestnetProcesses,
    duration: float | None,
    smoke: bool,
    rate: float,
    demo: bool = False,
) -> dict[str, object] | None:
    import trio
    from tqdm import tqdm

    started = time.monotonic()
    epoch_seconds = plan.clock.length_ms / 1000
    with tqdm(total=len(plan.nodes), desc="nodes in the consensus", unit="node",
              file=click.get_text_stream("stderr")) as bar:

        def progress(listed: int, total: int) -> None:
            bar.n = listed
            bar.refresh()
            failed = processes.exited()
            if failed:
                raise click.ClickException(f"daemons exited: {failed}; see their logs")

        consensus = await wait_for_consensus(
            plan, timeout=10 * epoch_seconds + 30, progress=progress
        )
    click.echo(
        f"consensus of epoch {consensus.epoch}: {len(consensus.descriptors)} nodes, "
        f"layers {[len(layer) for layer in consensus.layers]}, "
        f"{len(consensus.gateways)} gateways ({time.monotonic() - started:.1f} s)",
        err=True,
    )
    click.echo(f"configs, logs and metrics ports: {plan.directory / 'testnet.json'}", err=True)
    for node in plan.nodes:
        click.echo(
            f"  {node.name:10} port {node.port:5}  metrics http://127.0.0.1:{node.metrics_port}/metrics"
            f"  log {node.log}",
            err=True,
        )
    if demo:
        from trimix.demo import demo_run

        def echo(text: str) -> None:
            click.echo(text, err=True)

        rates = consensus.parameters
        echo(f"demo: two clients; every client sends λ_P {rates.lambda_p:g} + λ_L "
             f"{rates.lambda_l:g} + λ_D {rates.lambda_d:g} packets per second, busy or idle")
        demo_report = await demo_run(plan, echo, progress=click.get_text_stream("stderr"))
        echo("demo " + ("succeeded: every message delivered exactly once, intact"
                        if demo_report.ok else "FAILED"))
        return demo_report.as_dict()
    if smoke:
        from trimix.smoke import smoke_run

        seconds = duration if duration is not None else 20.0
        entry, exit_ = plan.gateways[0], plan.gateways[1]
        click.echo(f"smoke run: {rate:g} packets/s for {seconds:g} s", err=True)
        fetcher = ConsensusFetcher(
            plan.endpoints, plan.geometry, plan.clock, rng=random.Random(), request_timeout=2.0
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(fetcher.run))
            report = await smoke_run(
                lambda: fetcher.current or consensus, plan.geometry, entry, exit_,
                packets=max(1, round(rate * seconds)), rate=rate,
            )
            nursery.cancel_scope.cancel()
        summary = report.as_dict()
        summary["dropped_in_network"] = await network_drops(plan)
        click.echo(
            f"delivered {summary['delivered']} of {summary['sent']} "
            f"(duplicates {summary['duplicates']}); latency ms p50 {summary['latency_ms_p50']} "
            f"p90 {summary['latency_ms_p90']} p99 {summary['latency_ms_p99']}; overhead beyond "
            f"the drawn delays p50 {summary['overhead_ms_p50']} ms; dropped in the network: "
            f"{summary['dropped_in_network'] or 'none'}",
            err=True,
        )
        return summary
    if duration is None:
        click.echo("running; Ctrl-C stops every process", err=True)
        await trio.sleep_forever()
    await trio.sleep(max(0.0, duration - (time.monotonic() - started)))
    return None
