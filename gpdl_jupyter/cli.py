"""The ``gpdl`` console command: one subcommand, one API call.

Example::

    gpdl db start
    gpdl load /data/train train_images --resize 32 32
    gpdl preprocess train_images train_packed
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from gpdl_backend.datasets import QUICKSTART_LIMIT
from gpdl_backend.errors import GpdlError
from gpdl_jupyter.magics.commands import COMMANDS, Context
from gpdl_jupyter.progress import tqdm_bar
from gpdl_jupyter.usage import cli_spelling

Handler = Callable[[argparse.Namespace], int]


def _server(args: argparse.Namespace):
    from gpdl_backend.embedded import EmbeddedServer

    return EmbeddedServer.default(
        Path(args.home).resolve() if args.home else None,
        args.port or (int(os.environ["GPDL_PORT"]) if os.environ.get("GPDL_PORT") else None))


def _dsn(args: argparse.Namespace) -> str:
    from gpdl_jupyter.connection import resolve_dsn

    if getattr(args, "dsn", None):
        return args.dsn
    if args.home or args.port:
        from gpdl_backend.install import install_if_needed

        server = _server(args)
        dsn = server.start()
        install_if_needed(dsn, servers_dir=str(server.servers_dir))
        return dsn
    return resolve_dsn(None, use_jupysql=False)


def _shown_dsn(dsn: str, show_password: bool) -> str:
    """The DSN as printed: password masked unless ``--show-password``."""
    from gpdl_jupyter.connection import mask_password

    return dsn if show_password else mask_password(dsn)


# --- db ------------------------------------------------------------------
def cmd_db(args: argparse.Namespace) -> int:
    from gpdl_backend.install import default_site_paths, install_if_needed

    server = _server(args)
    if args.action == "start":
        unreadable = server.check_readable(default_site_paths()) if os.geteuid() == 0 else []
        if unreadable:
            print("the server's user cannot read: " + ", ".join(unreadable)
                  + "\nkeep the checkout and its .venv in a directory other users can read",
                  file=sys.stderr)
            return 1
        dsn = server.start(quiet=False)
        if not args.no_install:
            result = install_if_needed(dsn, servers_dir=str(server.servers_dir))
            done = "installed" if result.changed else "already installed"
            print(f"gpdl {result.version} {done} ({result.num_segments} segments)")
        print(_shown_dsn(dsn, args.show_password))
    elif args.action == "stop":
        print("stopped" if server.stop() else "not running")
    else:
        if server.running():
            print(f"running: {_shown_dsn(server.dsn(), args.show_password)}\n"
                  f"data: {server.data_dir}")
        else:
            print(f"not running (home {server.home})")
            return 3
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from gpdl_backend.install import install

    result = install(_dsn(args), site_paths=args.site_path or None,
                     servers_dir=args.servers_dir, num_segments=args.segments)
    before = f" (was {result.previous_version})" if result.previous_version else ""
    print(f"gpdl {result.version} installed{before} on {result.engine}, "
          f"{result.num_segments} segments")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from gpdl_backend.doctor import diagnose, format_table

    checks = diagnose(_dsn(args))
    print(format_table(checks))
    return 0 if all(c.ok for c in checks) else 1


def _secret(args: argparse.Namespace) -> str | None:
    """The secret access key, never from the command line unless warned about.

    ``--secret -`` reads a line from stdin, ``--secret-env NAME`` reads the
    variable ``NAME``; with ``--key`` and neither, a terminal prompts for it
    (``getpass``). ``--secret VALUE`` still works but warns: every user of the
    machine sees it in the process list.

    Raises:
        UsageError: an empty secret, an unset variable, or ``--key`` without a
            secret where nothing can prompt.
    """
    import getpass

    from gpdl_backend.errors import UsageError

    if args.secret_env is not None:
        value = os.environ.get(args.secret_env)
        if not value:
            raise UsageError(f"--secret-env {args.secret_env}: that environment variable is "
                             "not set or empty")
        return value
    if args.secret == "-":
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageError("--secret -: stdin gave an empty secret")
        return value
    if args.secret is not None:
        print("gpdl: warning: --secret VALUE shows the secret to every user of this machine "
              "(process list, shell history); use --secret - (stdin), --secret-env NAME or "
              "the prompt", file=sys.stderr)
        return args.secret
    if args.key is None:
        return None
    if sys.stdin.isatty():
        value = getpass.getpass(f"secret access key for {args.key}: ")
        if not value:
            raise UsageError("no secret entered")
        return value
    raise UsageError("--key needs its secret: --secret - (from stdin), --secret-env NAME, "
                     "or run in a terminal to be prompted")


def cmd_servers(args: argparse.Namespace) -> int:
    from gpdl_backend.servers import describe_server, list_servers
    from gpdl_jupyter import api

    if args.action == "add":
        secret = _secret(args)  # before connecting: a missing secret fails at once
        path = api.add_server(args.name, endpoint_url=args.endpoint_url, key=args.key,
                              secret=secret, region=args.region, base_path=args.base_path,
                              roles=tuple(args.roles), servers_dir=args.servers_dir,
                              dsn=_dsn(args))
        print(f"server config {args.name!r} written to {path}")  # never the secret
    else:
        where = Path(args.servers_dir) if args.servers_dir else api.servers_dir(dsn=_dsn(args))
        for name in list_servers(where):
            print(describe_server(where, name))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from gpdl_backend import datasets

    bar, update = tqdm_bar("img", "writing", notebook=False)
    with bar:
        if args.name == "fashion-mnist":
            counts = datasets.write_fashion_mnist(args.directory, limit=args.limit,
                                                  progress=update)
        else:
            count = datasets.write_synthetic_images(
                args.directory, args.count, size=tuple(args.size), mode=args.mode,
                seed=args.seed, progress=update)
            counts = {"synthetic": count}
    print(json.dumps(counts))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from gpdl_jupyter import api

    bar, update = tqdm_bar("file", f"loading {args.table}", notebook=False)
    with bar:
        result = api.load_images(
            args.location, args.table, batch_size=args.batch_size, server=args.server,
            resize=tuple(args.resize) if args.resize else None, color_mode=args.color_mode,
            int_pixels=args.int_pixels, if_exists=args.if_exists, threads=args.threads,
            num_segments=args.segments, progress=update, dsn=_dsn(args))
    print(f"{result.images} images in {result.rows} rows into {result.table} "
          f"({result.errors} skipped, see {result.table}_errors) "
          f"in {result.seconds:.1f} s = {result.images_per_second:.0f} images/s")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    from gpdl_jupyter import api

    # An empty --validation-of is refused, not read as "training data".
    result = api.preprocess(
        args.source, args.output, validation_of=args.validation_of,
        buffer_size=args.buffer_size, normalizing_const=args.normalizing_const,
        seed=args.seed, if_exists=args.if_exists, num_segments=args.segments, progress=print,
        dsn=_dsn(args))
    print(f"{result.images} images of {'x'.join(map(str, result.image_shape))} packed into "
          f"{result.buffers} buffers of {result.buffer_size} over {result.num_segments} "
          f"segments in {result.table}; {len(result.class_values)} classes")
    return 0


def _print_job(status) -> None:
    print(f"{status.status}: iteration {status.iterations_done}/{status.num_iterations}, "
          f"{status.units_done}/{status.units_total} units, {status.unit_retries} retried")
    for config in status.configs:
        metric = config["validation_metric"] if config["validation_metric"] is not None \
            else config["training_metric"]
        shown = f"{metric:.4f}" if metric is not None else "-"
        print(f"  mst {config['mst_key']:>3}  {config['status']:<9} metric {shown}  "
              f"{config['compile_params']}; {config['fit_params']}")


def _follow(job) -> int:
    """A bar of the job's units until it ends; Ctrl-C leaves it training on the server."""
    name = str(job.output.model)
    bar, update = tqdm_bar("unit", f"training {name}", notebook=False, counted="retries")
    try:
        with bar:
            while True:
                status = job.wait(timeout=1.0)
                update(status.units_done, status.units_total, status.unit_retries)
                if status.status != "running":
                    break
    except KeyboardInterrupt:
        print(f"\n{name} trains on in the database: gpdl status {name} / gpdl stop {name}")
        return 130
    _print_job(status)
    return 0 if status.status in ("finished", "stopped") else 1


def cmd_fit(args: argparse.Namespace) -> int:
    from gpdl_jupyter import api

    job = api.fit(
        args.source, args.output, args.mst_table, num_iterations=args.iterations,
        use_gpus=args.use_gpus, validation_table=args.validation,
        metrics_compute_frequency=args.metrics_frequency, warm_start=args.warm_start,
        name=args.name, description=args.description, use_caching=not args.no_caching,
        seed=args.seed, dsn=_dsn(args))
    return _follow(job)


def cmd_automl(args: argparse.Namespace) -> int:
    from gpdl_jupyter.magics.commands import automl

    args.dsn = _dsn(args)
    result = automl.start(args, None)
    if args.plan:
        print(result)
        return 0
    return _follow(result)


def cmd_resume(args: argparse.Namespace) -> int:
    from gpdl_jupyter import api

    return _follow(api.resume(args.output, dsn=_dsn(args)))


def cmd_steer(args: argparse.Namespace) -> int:
    """``extend`` / ``clone``: the magic's command prints what it did."""
    args.dsn = _dsn(args)
    COMMANDS[args.command].run(args, Context())
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    from gpdl_backend.mop.job import TrainingJob
    from gpdl_jupyter import api

    if args.output is None:  # status alone: the database
        print(api.info(dsn=_dsn(args)))
        return 0
    if args.command == "stop":
        api.stop(args.output, mst_key=args.mst_key, dsn=_dsn(args))
        print("stop requested" + (f" for mst {args.mst_key}" if args.mst_key else ""))
    else:
        _print_job(TrainingJob.attach(_dsn(args), args.output).status())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from gpdl_jupyter import api

    result = api.evaluate(args.model_table, args.test_table, args.output,
                          mst_key=args.mst_key, dsn=_dsn(args))
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in
                        zip(result.metrics_type, result.metrics_all, strict=True)
                        if value is not None)
    print(f"mst_key {result.mst_key} on {result.images} images: {result.loss_type} "
          f"{result.loss:.4f}" + (f", {metrics}" if metrics else "") + f" -> {result.table}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from gpdl_jupyter import api

    print(repr(api.jobs(state=args.state, dsn=_dsn(args))))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gpdl_jupyter.demo import QUICKSTART, run_demo

    notebook = Path(args.notebook).resolve() if args.notebook else QUICKSTART
    run_demo(home=Path(args.home).resolve() if args.home else None, port=args.port,
             data_dir=Path(args.data_dir) if args.data_dir else None, limit=args.limit,
             out_dir=Path(args.out).resolve() if args.out else None,
             notebook=None if args.no_notebook else notebook,
             show_password=args.show_password)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gpdl``."""
    # --home / --port are accepted before or after the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", default=argparse.SUPPRESS,
                        help="gpdl home (embedded server); default $GPDL_HOME")
    common.add_argument("--port", type=int, default=argparse.SUPPRESS,
                        help="embedded server port (default 54329)")
    parser = argparse.ArgumentParser(
        prog="gpdl", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Deep-learning image classification inside PostgreSQL and Greenplum:\n"
                    "one subcommand, one SQL call.",
        epilog="examples:\n  gpdl demo\n  gpdl load /data/train train_images --resize 32 32"
               "\n  gpdl preprocess train_images train_packed\n  gpdl SUBCOMMAND --help")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", parents=[common], help="the embedded PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.add_argument("--no-install", action="store_true", help="start without installing")
    db.add_argument("--show-password", action="store_true",
                    help="print the DSN with its password (default: masked; the full DSN "
                    "is also in <gpdl home>/dsn, mode 0600)")
    db.set_defaults(handler=cmd_db)

    inst = sub.add_parser("install", parents=[common],
                          help="create or upgrade schema gpdl in a database")
    inst.add_argument("dsn", nargs="?")
    inst.add_argument("--segments", type=int, help="PostgreSQL virtual segments")
    inst.add_argument("--site-path", action="append",
                      help="path the server's Python adds to sys.path (repeatable)")
    inst.add_argument("--servers-dir", help="object-store configs on the database host")
    inst.set_defaults(handler=cmd_install)

    doctor = sub.add_parser("doctor", parents=[common], help="check what works")
    doctor.add_argument("dsn", nargs="?")
    doctor.set_defaults(handler=cmd_doctor)

    servers = sub.add_parser("servers", parents=[common],
                             help="named object-store configs (credentials)")
    servers.add_argument("action", choices=["add", "list"])
    servers.add_argument("name", nargs="?")
    servers.add_argument("--dsn", help="the database whose recorded servers_dir to use")
    servers.add_argument("--servers-dir",
                         help="write there instead of the directory gpdl install recorded")
    servers.add_argument("--base-path", metavar="URL",
                         help="the path or URL the config opens to --role roles "
                         "(s3://bucket/images, /data/images); superusers read anywhere")
    servers.add_argument("--role", action="append", default=[], dest="roles",
                         help="a database role that may use the config (repeatable); "
                         "default: superusers only")
    servers.add_argument("--endpoint-url")
    servers.add_argument("--region")
    servers.add_argument("--key", help="access key id")
    given = servers.add_mutually_exclusive_group()
    given.add_argument("--secret", metavar="-",
                       help="'-': read the secret access key from stdin (a VALUE here still "
                       "works but warns: others see it in the process list); default: "
                       "prompted for when --key is given")
    given.add_argument("--secret-env", metavar="NAME",
                       help="read the secret access key from environment variable NAME")
    servers.set_defaults(handler=cmd_servers)

    data = sub.add_parser("datasets", parents=[common], help="write a data set as image files")
    data.add_argument("name", choices=["fashion-mnist", "synthetic"])
    data.add_argument("directory")
    data.add_argument("--limit", type=int, help="fashion-mnist: first N of each split")
    data.add_argument("--count", type=int, default=1000, help="synthetic: images")
    data.add_argument("--size", type=int, nargs=2, default=[32, 32], metavar=("H", "W"))
    data.add_argument("--mode", default="RGB", choices=["RGB", "L"])
    data.add_argument("--seed", type=int, default=0)
    data.set_defaults(handler=cmd_datasets)

    # The commands a notebook has too: their options come from the %gpdl command
    # table, defined once; only what the terminal shows differs.
    for name, handler in (("load", cmd_load), ("preprocess", cmd_preprocess),
                          ("fit", cmd_fit), ("automl", cmd_automl), ("resume", cmd_resume),
                          ("status", cmd_job), ("stop", cmd_job), ("jobs", cmd_jobs),
                          ("extend", cmd_steer), ("clone", cmd_steer),
                          ("evaluate", cmd_evaluate)):
        module = COMMANDS[name]
        command = sub.add_parser(name, parents=[common], help=module.HELP)
        module.add_arguments(command, Context())
        command.add_argument("--dsn", help="database URL (default: $DATABASE_URL, else the "
                             "embedded server)")
        command.add_argument("--show-sql", action="store_true",
                             help="print the statement instead of running it")
        command.set_defaults(handler=_or_show_sql(handler))

    demo = sub.add_parser("demo", parents=[common],
                          help="the end-to-end demo on the embedded database")
    demo.add_argument("--data-dir", help="where to write the image files")
    demo.add_argument("--limit", type=int, default=QUICKSTART_LIMIT,
                      help="images per split, stratified (default: the quickstart's "
                      f"{QUICKSTART_LIMIT}, 10%%; 60000 is all)")
    demo.add_argument("--out", help="where the executed notebook, its HTML report and "
                      "slides go (default: <gpdl home>/demo)")
    demo.add_argument("--notebook", help="the notebook to run (default: the quickstart)")
    demo.add_argument("--no-notebook", action="store_true",
                      help="stop after loading and packing the data")
    demo.add_argument("--show-password", action="store_true",
                      help="print the server's DSN with its password (default: masked)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def _or_show_sql(handler: Callable[[argparse.Namespace], int]
                 ) -> Callable[[argparse.Namespace], int]:
    """With --show-sql, print the statement the command would send (as %gpdl does)."""
    def run(args: argparse.Namespace) -> int:
        if not args.show_sql:
            return handler(args)
        print(COMMANDS[args.command].run(args, Context(show_sql=True)))
        return 0

    return run


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``gpdl`` command."""
    # Defaults live in the namespace: set_defaults would change the shared --home action.
    args = build_parser().parse_args(argv, namespace=argparse.Namespace(home=None, port=None))
    try:
        return args.handler(args)
    except GpdlError as error:
        print(f"gpdl: error: {cli_spelling(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpdl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
