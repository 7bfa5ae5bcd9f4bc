"""``python -m conformance``: the command line (``conformance.cli.console_main``)."""

if __name__ == "__main__":
    from conformance.cli import console_main

    console_main()
