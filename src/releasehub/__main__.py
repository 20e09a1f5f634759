from releasehub.cli.main import main

main()
