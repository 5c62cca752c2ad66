from flipkd.cli.main import run

run()
