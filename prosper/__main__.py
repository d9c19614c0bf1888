from prosper.cli.app import run

run()
