build/ingress/gateway.o: ingress/gateway.c ingress/gateway.h \
 common/config.h /usr/include/cjson/cJSON.h
ingress/gateway.h:
common/config.h:
/usr/include/cjson/cJSON.h:
