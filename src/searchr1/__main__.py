from searchr1.cli import main

main()
