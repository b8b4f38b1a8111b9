build/ingress/dedup.o: ingress/dedup.c ingress/dedup.h
ingress/dedup.h:
