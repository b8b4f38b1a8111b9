build/ingress/main.o: ingress/main.c ingress/backlog.h common/config.h \
 ingress/dedup.h ingress/gateway.h common/http.h common/kq.h common/log.h \
 common/proc.h common/config.h
ingress/backlog.h:
common/config.h:
ingress/dedup.h:
ingress/gateway.h:
common/http.h:
common/kq.h:
common/log.h:
common/proc.h:
common/config.h:
