from agentops_assets.cli.main import main

main()
