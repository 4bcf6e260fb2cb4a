from searchr1.retriever.cli import main

main()
