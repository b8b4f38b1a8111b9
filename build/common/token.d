build/common/token.o: common/token.c common/token.h \
 /usr/include/cjson/cJSON.h
common/token.h:
/usr/include/cjson/cJSON.h:
