build/ingress/backlog.o: ingress/backlog.c ingress/backlog.h
ingress/backlog.h:
