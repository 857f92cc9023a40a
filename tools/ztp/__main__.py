from ztp.cli import main

main()
