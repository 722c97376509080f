from textcurate.cli import main

main()
