def _run() -> None:
    # First, before anything else is imported: `python -m` put the working directory on sys.path.
    from releasehub.safepath import drop_cwd_from_sys_path

    drop_cwd_from_sys_path()
    from releasehub.cli.main import main

    main()


_run()
