from agentops_assets.cli import main

main()
