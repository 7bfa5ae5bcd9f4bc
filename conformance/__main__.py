"""``python -m conformance``. Imports the CLI only when run as the main program: worker
processes started with multiprocessing's spawn re-import this module, and must not pay for
the CLI's imports."""

if __name__ == "__main__":
    from conformance.cli import console_main

    console_main()
